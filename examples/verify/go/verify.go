// Command verify checks secretgate's internal header (x-authenticated-client) with Go's
// standard library alone.
//
// This is the check a token service behind secretgate runs on every request, every rule
// of docs/design.md §5.5: the key by `kid` and `alg` pinned to that key (HS256 for a
// shared key, the JWK's ES256 or EdDSA for a published one; never `none`, no `crit`),
// the signature, `exp` and `iat` with a small skew, `iss`, `aud`, and the binding to
// this very request: `htm`, `htu`, `query_sha256` (present if and only if the request
// had a query) and `body_sha256`. Copy LoadJWKS, HMACKey and AuthenticatedClient into
// the service; the command line below is for trying it out, and is what secretgate's CI
// runs against headers made by a real gateway.
//
//	verify (--jwks FILE | --hmac KID=FILE ...) --issuer ISS --audience AUD \
//	       --method M --url URL --body-file FILE [--query Q] [--leeway S] HEADER
//
// Prints {"client_id", "auth_method", "cnf"} as JSON and exits 0, or prints
// "refused: <check>: <detail>" on stderr and exits 1 (2 for unusable arguments or keys).
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"
)

// Key is one verification key, pinned to one algorithm: "HS256" (Secret), "ES256"
// (EC) or "EdDSA" (Ed).
type Key struct {
	Alg    string
	Secret []byte
	EC     *ecdsa.PublicKey
	Ed     ed25519.PublicKey
}

// Refused says which rule a header broke (Check) and how.
type Refused struct{ Check, Detail string }

func (r *Refused) Error() string { return r.Check + ": " + r.Detail }

func refuse(check, format string, a ...any) error {
	return &Refused{check, fmt.Sprintf(format, a...)}
}

var b64 = base64.RawURLEncoding // base64url without padding, as JWS uses it

// LoadJWKS adds each ES256 / EdDSA key of the gateway's JWK Set (its
// /.well-known/jwks.json on the admin listener, or its internal_header.jwks_file) to
// keys, pinned to the JWK's algorithm.
func LoadJWKS(set []byte, keys map[string]Key) error {
	var jwks struct {
		Keys []struct {
			Kty, Crv, Alg, Kid, X, Y string
			D                        *string
		}
	}
	if err := json.Unmarshal(set, &jwks); err != nil {
		return err
	}
	for _, k := range jwks.Keys {
		if k.D != nil {
			return errors.New("a private key in the JWK Set; use the public set")
		}
		x, errX := b64.DecodeString(k.X)
		switch {
		case k.Kty == "EC" && k.Crv == "P-256" && (k.Alg == "" || k.Alg == "ES256"):
			y, errY := b64.DecodeString(k.Y)
			px, py := new(big.Int).SetBytes(x), new(big.Int).SetBytes(y)
			if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 || !elliptic.P256().IsOnCurve(px, py) {
				return fmt.Errorf("key %q: not a P-256 public key", k.Kid)
			}
			keys[k.Kid] = Key{Alg: "ES256", EC: &ecdsa.PublicKey{Curve: elliptic.P256(), X: px, Y: py}}
		case k.Kty == "OKP" && k.Crv == "Ed25519" && (k.Alg == "" || k.Alg == "EdDSA"):
			if errX != nil || len(x) != ed25519.PublicKeySize {
				return fmt.Errorf("key %q: not an Ed25519 public key", k.Kid)
			}
			keys[k.Kid] = Key{Alg: "EdDSA", Ed: ed25519.PublicKey(x)}
		}
		// Any other key (another algorithm, another issuer's) is not for this header.
	}
	return nil
}

// HMACKey reads a shared HS256 key file: like the gateway, one trailing newline of the
// file is not part of the key.
func HMACKey(file string) (Key, error) {
	secret, err := os.ReadFile(file)
	if bytes.HasSuffix(secret, []byte("\r\n")) {
		secret = secret[:len(secret)-2]
	} else if bytes.HasSuffix(secret, []byte("\n")) {
		secret = secret[:len(secret)-1]
	}
	return Key{Alg: "HS256", Secret: secret}, err
}

// Claims of the internal header. Pointers tell a missing claim from an empty one.
type Claims struct {
	Iss         *string         `json:"iss"`
	Aud         *string         `json:"aud"`
	Sub         *string         `json:"sub"`
	ClientID    *string         `json:"client_id"`
	AuthMethod  *string         `json:"auth_method"`
	Iat         *int64          `json:"iat"`
	Exp         *int64          `json:"exp"`
	Jti         *string         `json:"jti"`
	Htm         *string         `json:"htm"`
	Htu         *string         `json:"htu"`
	QuerySHA256 *string         `json:"query_sha256"`
	BodySHA256  *string         `json:"body_sha256"`
	Cnf         json.RawMessage `json:"cnf"`
}

// Request is what the token service received: method, public URL of the endpoint
// (without query), the raw query after "?" (nil without "?"; empty for a bare "?") and
// the exact body bytes.
type Request struct {
	Method, URL string
	Query       *string
	Body        []byte
}

// Client is what the token service takes from a valid header. Cnf is {"x5t#S256": ...}
// when the client presented a certificate, else null (RFC 8705 §3: bind tokens to it).
type Client struct {
	ClientID   string          `json:"client_id"`
	AuthMethod string          `json:"auth_method"`
	Cnf        json.RawMessage `json:"cnf"`
}

func sha256b64(data []byte) string {
	sum := sha256.Sum256(data)
	return b64.EncodeToString(sum[:])
}

// AuthenticatedClient checks one header value against the request it came with.
func AuthenticatedClient(value string, keys map[string]Key, issuer, audience string,
	req Request, leeway int64, now time.Time) (*Client, error) {
	parts := strings.Split(value, ".")
	if len(parts) != 3 {
		return nil, refuse("malformed", "not a compact JWS")
	}
	var header struct {
		Alg, Kid *string
		Crit     json.RawMessage
	}
	raw, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(raw, &header) != nil {
		return nil, refuse("malformed", "the JOSE header is not base64url JSON")
	}
	// RFC 7515 §4.1.11: the gateway uses no extension, so none is understood here.
	if header.Crit != nil {
		return nil, refuse("crit", "extensions %s are not understood", header.Crit)
	}
	if header.Kid == nil {
		return nil, refuse("kid", "no kid")
	}
	key, ok := keys[*header.Kid]
	if !ok {
		return nil, refuse("kid", "unknown kid %q", *header.Kid)
	}
	// The key decides the algorithm, never the header (RFC 8725 §3.1): an HS256 header
	// naming a public key's kid, or `none`, is refused before anything is computed.
	if header.Alg == nil || *header.Alg != key.Alg {
		return nil, refuse("alg", "the header's alg is not %s, the algorithm of key %q", key.Alg, *header.Kid)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, refuse("malformed", "the signature is not base64url")
	}
	input := []byte(parts[0] + "." + parts[1])
	digest := sha256.Sum256(input)
	var verified bool
	switch key.Alg {
	case "HS256":
		mac := hmac.New(sha256.New, key.Secret)
		mac.Write(input)
		verified = hmac.Equal(mac.Sum(nil), sig) // constant time
	case "ES256": // RFC 7518 §3.4: r || s, 32 bytes each
		verified = len(sig) == 64 && ecdsa.Verify(key.EC, digest[:],
			new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case "EdDSA": // RFC 8037
		verified = ed25519.Verify(key.Ed, input, sig)
	}
	if !verified {
		return nil, refuse("signature", "does not verify with key %q", *header.Kid)
	}
	// Nothing of the payload is read before the signature verified.
	var c Claims
	if raw, err = b64.DecodeString(parts[1]); err != nil || json.Unmarshal(raw, &c) != nil {
		return nil, refuse("malformed", "the claims are not base64url JSON")
	}
	for name, p := range map[string]*string{"iss": c.Iss, "aud": c.Aud, "sub": c.Sub,
		"client_id": c.ClientID, "auth_method": c.AuthMethod, "jti": c.Jti, "htm": c.Htm,
		"htu": c.Htu, "body_sha256": c.BodySHA256} {
		if p == nil {
			return nil, refuse("claims", "no %s", name)
		}
	}
	if c.Iat == nil || c.Exp == nil {
		return nil, refuse("claims", "no iat or exp")
	}
	t := now.Unix()
	switch {
	case t > *c.Exp+leeway:
		return nil, refuse("exp", "expired %d s ago", t-*c.Exp)
	case *c.Iat > t+leeway:
		return nil, refuse("iat", "issued %d s in the future", *c.Iat-t)
	case *c.Iss != issuer:
		return nil, refuse("iss", "%q, not %q", *c.Iss, issuer)
	case *c.Aud != audience:
		return nil, refuse("aud", "%q, not %q", *c.Aud, audience)
	}
	// The binding to this request: the header cannot be moved to another one.
	switch {
	case *c.Htm != req.Method:
		return nil, refuse("htm", "%s, but the request is %s", *c.Htm, req.Method)
	case *c.Htu != req.URL:
		return nil, refuse("htu", "%s, but the request is for %s", *c.Htu, req.URL)
	case req.Query == nil && c.QuerySHA256 != nil:
		return nil, refuse("query_sha256", "present, but the request has no query")
	case req.Query != nil && (c.QuerySHA256 == nil || *c.QuerySHA256 != sha256b64([]byte(*req.Query))):
		return nil, refuse("query_sha256", "does not match the request's query")
	case *c.BodySHA256 != sha256b64(req.Body):
		return nil, refuse("body_sha256", "does not match the body received")
	}
	cnf := c.Cnf
	if cnf == nil {
		cnf = json.RawMessage("null")
	}
	return &Client{ClientID: *c.ClientID, AuthMethod: *c.AuthMethod, Cnf: cnf}, nil
}

// hmacFlags collects repeated --hmac KID=FILE.
type hmacFlags []string

func (h *hmacFlags) String() string     { return strings.Join(*h, ",") }
func (h *hmacFlags) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	var hmacs hmacFlags
	var query optional
	jwks := flag.String("jwks", "", "the gateway's JWK Set (ES256 and EdDSA keys)")
	flag.Var(&hmacs, "hmac", "KID=FILE: a shared HS256 key and its kid (repeat for several)")
	issuer := flag.String("issuer", "", "expected iss (required)")
	audience := flag.String("audience", "", "expected aud (required)")
	method := flag.String("method", "", "the request method (required)")
	url := flag.String("url", "", "public URL of the endpoint, no query (required)")
	bodyFile := flag.String("body-file", "", "the exact body bytes received (required)")
	flag.Var(&query, "query", "the query received, without '?' (omit if none)")
	leeway := flag.Int64("leeway", 5, "clock skew, seconds")
	flag.Parse()
	usage := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "unusable arguments or keys: "+format+"\n", a...)
		return 2
	}
	if *issuer == "" || *audience == "" || *method == "" || *url == "" || *bodyFile == "" {
		return usage("--issuer, --audience, --method, --url and --body-file are required")
	}
	if flag.NArg() != 1 || (*jwks == "" && len(hmacs) == 0) {
		return usage("give --jwks and/or --hmac, and the header value once")
	}
	keys := map[string]Key{}
	if *jwks != "" {
		set, err := os.ReadFile(*jwks)
		if err == nil {
			err = LoadJWKS(set, keys)
		}
		if err != nil {
			return usage("%s: %v", *jwks, err)
		}
	}
	for _, spec := range hmacs {
		kid, file, ok := strings.Cut(spec, "=")
		if !ok || kid == "" {
			return usage("--hmac takes KID=FILE")
		}
		key, err := HMACKey(file)
		if err != nil {
			return usage("%v", err)
		}
		keys[kid] = key
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		return usage("%v", err)
	}
	req := Request{Method: *method, URL: *url, Query: query.value, Body: body}
	client, err := AuthenticatedClient(flag.Arg(0), keys, *issuer, *audience, req, *leeway, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "refused:", err)
		return 1
	}
	out, _ := json.Marshal(client)
	fmt.Println(string(out))
	return 0
}

// optional is a string flag that tells "not given" (nil) from "given empty".
type optional struct{ value *string }

func (o *optional) String() string {
	if o.value == nil {
		return ""
	}
	return *o.value
}
func (o *optional) Set(v string) error { o.value = &v; return nil }
