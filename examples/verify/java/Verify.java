// Verify secretgate's internal header (x-authenticated-client) with the JDK alone (17+).
//
// This is the check a token service behind secretgate runs on every request, every rule
// of docs/design.md §5.5: the key by `kid` and `alg` pinned to that key (HS256 for a
// shared key, the JWK's ES256 or EdDSA for a published one; never `none`, no `crit`),
// the signature, `exp` and `iat` with a small skew, `iss`, `aud`, and the binding to
// this very request: `htm`, `htu`, `query_sha256` (present if and only if the request
// had a query) and `body_sha256`. Copy the class (less main) into the service; the
// command line is for trying it out, and is what secretgate's CI runs against headers
// made by a real gateway. No library: java.security, javax.crypto, java.util.Base64 and
// a small JSON reader at the end of this file.
//
//   java Verify.java (--jwks FILE | --hmac KID=FILE ...) --issuer ISS --audience AUD \
//        --method M --url URL --body-file FILE [--query Q] [--leeway S] HEADER
//
// Prints {"client_id", "auth_method", "cnf"} as JSON and exits 0, or prints
// "refused: <check>: <detail>" on stderr and exits 1 (2 for unusable arguments or keys).

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.AlgorithmParameters;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.ECFieldFp;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.ECParameterSpec;
import java.security.spec.ECPoint;
import java.security.spec.ECPublicKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

public final class Verify {

    /** One verification key, pinned to one algorithm: "HS256", "ES256" or "EdDSA". */
    public record Key(String alg, byte[] secret, PublicKey publicKey) {}

    /** What the token service received: method, public URL of the endpoint (no query),
     *  the raw query after "?" (null without "?"; "" for a bare "?"), the exact body. */
    public record Request(String method, String url, String query, byte[] body) {}

    /** What the token service takes from a valid header. cnf is {"x5t#S256": ...} when the
     *  client presented a certificate, else null (RFC 8705 §3: bind the tokens to it). */
    public record Client(String clientId, String authMethod, Map<String, Object> cnf) {}

    /** The header is not valid for this request; check names the rule it broke. */
    public static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        public final String check;

        Refused(String check, String detail) {
            super(check + ": " + detail);
            this.check = check;
        }
    }

    private static final Base64.Decoder B64 = Base64.getUrlDecoder();
    private static final Base64.Encoder B64_OUT = Base64.getUrlEncoder().withoutPadding();

    /** Each ES256 / EdDSA key of the gateway's JWK Set (its /.well-known/jwks.json on the
     *  admin listener, or its internal_header.jwks_file), pinned to the JWK's algorithm. */
    public static Map<String, Key> loadJwks(String json) throws GeneralSecurityException {
        Map<String, Key> keys = new HashMap<>();
        for (Object o : (List<?>) Json.object(json).get("keys")) {
            Map<?, ?> jwk = (Map<?, ?>) o;
            if (jwk.containsKey("d")) throw new GeneralSecurityException("a private key in the JWK Set");
            Object kty = jwk.get("kty"), crv = jwk.get("crv"), alg = jwk.get("alg");
            if ("EC".equals(kty) && "P-256".equals(crv) && (alg == null || "ES256".equals(alg))) {
                keys.put((String) jwk.get("kid"), new Key("ES256", null, p256(b64(jwk.get("x")), b64(jwk.get("y")))));
            } else if ("OKP".equals(kty) && "Ed25519".equals(crv) && (alg == null || "EdDSA".equals(alg))) {
                keys.put((String) jwk.get("kid"), new Key("EdDSA", null, ed25519(b64(jwk.get("x")))));
            }
            // Any other key (another algorithm, another issuer's) is not for this header.
        }
        return keys;
    }

    /** A P-256 public key from its coordinates, refused unless the point is on the curve. */
    static PublicKey p256(byte[] x, byte[] y) throws GeneralSecurityException {
        AlgorithmParameters params = AlgorithmParameters.getInstance("EC");
        params.init(new ECGenParameterSpec("secp256r1"));
        ECParameterSpec curve = params.getParameterSpec(ECParameterSpec.class);
        BigInteger px = new BigInteger(1, x), py = new BigInteger(1, y);
        BigInteger p = ((ECFieldFp) curve.getCurve().getField()).getP();
        // y² = x³ + ax + b (mod p)
        BigInteger rhs = px.pow(3).add(curve.getCurve().getA().multiply(px)).add(curve.getCurve().getB()).mod(p);
        if (x.length != 32 || y.length != 32 || !py.modPow(BigInteger.TWO, p).equals(rhs)) {
            throw new GeneralSecurityException("not a P-256 public key");
        }
        return KeyFactory.getInstance("EC").generatePublic(new ECPublicKeySpec(new ECPoint(px, py), curve));
    }

    /** An Ed25519 public key from its 32 bytes, as the X.509 SubjectPublicKeyInfo the JDK reads. */
    static PublicKey ed25519(byte[] x) throws GeneralSecurityException {
        if (x.length != 32) throw new GeneralSecurityException("not an Ed25519 public key");
        byte[] spki = Arrays.copyOf(new byte[] {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}, 44);
        System.arraycopy(x, 0, spki, 12, 32);
        return KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(spki));
    }

    /** A shared HS256 key file: like the gateway, one trailing newline is not part of the key. */
    public static Key hmacKey(Path file) throws java.io.IOException {
        byte[] s = Files.readAllBytes(file);
        int n = s.length;
        if (n > 0 && s[n - 1] == '\n') n -= (n > 1 && s[n - 2] == '\r') ? 2 : 1;
        return new Key("HS256", Arrays.copyOf(s, n), null);
    }

    /** Checks one header value against the request it came with. */
    public static Client authenticatedClient(String value, Map<String, Key> keys, String issuer, String audience,
            Request req, long leeway, long now) throws Refused {
        String[] parts = value.split("\\.", -1);
        if (parts.length != 3) throw new Refused("malformed", "not a compact JWS");
        Map<String, Object> header = decodeJson(parts[0], "the JOSE header");
        // RFC 7515 §4.1.11: the gateway uses no extension, so none is understood here.
        if (header.containsKey("crit")) throw new Refused("crit", "extensions " + header.get("crit") + " are not understood");
        Key key = header.get("kid") instanceof String kid ? keys.get(kid) : null;
        if (key == null) throw new Refused("kid", "unknown kid " + header.get("kid"));
        // The key decides the algorithm, never the header (RFC 8725 §3.1): an HS256 header
        // naming a public key's kid, or `none`, is refused before anything is computed.
        if (!key.alg().equals(header.get("alg"))) {
            throw new Refused("alg", header.get("alg") + ", but key " + header.get("kid") + " is " + key.alg());
        }
        byte[] input = (parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII);
        byte[] sig;
        try {
            sig = b64(parts[2]);
        } catch (IllegalArgumentException e) {
            throw new Refused("malformed", "the signature is not base64url");
        }
        if (!verifies(key, input, sig)) throw new Refused("signature", "does not verify with key " + header.get("kid"));
        // Nothing of the payload is read before the signature verified.
        Map<String, Object> c = decodeJson(parts[1], "the claims");
        for (String name : List.of("iss", "aud", "sub", "client_id", "auth_method", "jti", "htm", "htu", "body_sha256")) {
            if (!(c.get(name) instanceof String)) throw new Refused("claims", "no " + name);
        }
        if (!(c.get("iat") instanceof Long iat) || !(c.get("exp") instanceof Long exp)) {
            throw new Refused("claims", "no iat or exp");
        }
        if (now > exp + leeway) throw new Refused("exp", "expired " + (now - exp) + " s ago");
        if (iat > now + leeway) throw new Refused("iat", "issued " + (iat - now) + " s in the future");
        if (!issuer.equals(c.get("iss"))) throw new Refused("iss", c.get("iss") + ", not " + issuer);
        if (!audience.equals(c.get("aud"))) throw new Refused("aud", c.get("aud") + ", not " + audience);
        // The binding to this request: the header cannot be moved to another one.
        if (!req.method().equals(c.get("htm"))) throw new Refused("htm", c.get("htm") + ", but the request is " + req.method());
        if (!req.url().equals(c.get("htu"))) throw new Refused("htu", c.get("htu") + ", but the request is for " + req.url());
        Object query = c.get("query_sha256");
        if (req.query() == null ? query != null : !sha256(req.query().getBytes(StandardCharsets.UTF_8)).equals(query)) {
            throw new Refused("query_sha256", req.query() == null ? "present, but the request has no query"
                    : "does not match the request's query");
        }
        if (!sha256(req.body()).equals(c.get("body_sha256"))) throw new Refused("body_sha256", "does not match the body received");
        @SuppressWarnings("unchecked")
        Map<String, Object> cnf = c.get("cnf") instanceof Map<?, ?> m ? (Map<String, Object>) m : null;
        return new Client((String) c.get("client_id"), (String) c.get("auth_method"), cnf);
    }

    private static boolean verifies(Key key, byte[] input, byte[] sig) throws Refused {
        try {
            if (key.alg().equals("HS256")) {
                Mac mac = Mac.getInstance("HmacSHA256");
                mac.init(new SecretKeySpec(key.secret(), "HmacSHA256"));
                return MessageDigest.isEqual(mac.doFinal(input), sig); // constant time
            }
            // ES256: r || s, 32 bytes each (RFC 7518 §3.4), which is the P1363 format. EdDSA: RFC 8037.
            if (key.alg().equals("ES256") && sig.length != 64) return false;
            Signature s = Signature.getInstance(key.alg().equals("ES256") ? "SHA256withECDSAinP1363Format" : "Ed25519");
            s.initVerify(key.publicKey());
            s.update(input);
            return s.verify(sig);
        } catch (GeneralSecurityException e) {
            return false;
        }
    }

    private static Map<String, Object> decodeJson(String segment, String what) throws Refused {
        try {
            return Json.object(new String(b64(segment), StandardCharsets.UTF_8));
        } catch (RuntimeException e) { // not base64url, not JSON, not an object
            throw new Refused("malformed", what + " is not base64url JSON");
        }
    }

    /** base64url without padding, strictly (the JWS encoding). */
    static byte[] b64(Object segment) {
        if (!(segment instanceof String s) || s.indexOf('=') >= 0) throw new IllegalArgumentException("not base64url");
        return B64.decode(s);
    }

    /** base64url (no padding) of SHA-256, as the gateway writes body_sha256. */
    static String sha256(byte[] data) {
        try {
            return B64_OUT.encodeToString(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    public static void main(String[] args) throws Exception {
        System.exit(run(args));
    }

    static int run(String[] args) throws Exception {
        Map<String, String> o = new HashMap<>();
        List<String> hmacs = new ArrayList<>(), rest = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.startsWith("--") && i + 1 < args.length) {
                if (a.equals("--hmac")) hmacs.add(args[++i]); else o.put(a.substring(2), args[++i]);
            } else {
                rest.add(a);
            }
        }
        String missing = null;
        for (String name : List.of("issuer", "audience", "method", "url", "body-file")) {
            if (!o.containsKey(name)) missing = "--" + name + " is required";
        }
        if (rest.size() != 1 || (!o.containsKey("jwks") && hmacs.isEmpty())) missing = "give --jwks and/or --hmac, and the header value once";
        Map<String, Key> keys = new HashMap<>();
        byte[] body;
        long leeway;
        try {
            if (missing != null) throw new IllegalArgumentException(missing);
            if (o.containsKey("jwks")) keys.putAll(loadJwks(Files.readString(Path.of(o.get("jwks")))));
            for (String spec : hmacs) {
                int at = spec.indexOf('=');
                if (at < 1) throw new IllegalArgumentException("--hmac takes KID=FILE");
                keys.put(spec.substring(0, at), hmacKey(Path.of(spec.substring(at + 1))));
            }
            body = Files.readAllBytes(Path.of(o.get("body-file")));
            leeway = Long.parseLong(o.getOrDefault("leeway", "5"));
        } catch (Exception e) {
            System.err.println("unusable arguments or keys: " + e);
            return 2;
        }
        Request req = new Request(o.get("method"), o.get("url"), o.get("query"), body);
        try {
            Client c = authenticatedClient(rest.get(0), keys, o.get("issuer"), o.get("audience"), req, leeway,
                    System.currentTimeMillis() / 1000);
            System.out.println("{\"client_id\":" + Json.quote(c.clientId()) + ",\"auth_method\":"
                    + Json.quote(c.authMethod()) + ",\"cnf\":" + (c.cnf() == null ? "null"
                    : "{\"x5t#S256\":" + Json.quote(String.valueOf(c.cnf().get("x5t#S256"))) + "}") + "}");
            return 0;
        } catch (Refused e) {
            System.err.println("refused: " + e.getMessage());
            return 1;
        }
    }

    /** The little JSON this needs (RFC 8259): objects (a repeated name is refused), arrays,
     *  strings, integers as Long, other numbers as Double, true, false, null. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        /** Parses a document that must be one object; IllegalArgumentException otherwise. */
        @SuppressWarnings("unchecked")
        static Map<String, Object> object(String text) {
            Json p = new Json(text);
            Object v = p.value();
            p.space();
            if (p.i != text.length() || !(v instanceof Map)) throw new IllegalArgumentException("not one JSON object");
            return (Map<String, Object>) v;
        }

        static String quote(String v) {
            StringBuilder b = new StringBuilder("\"");
            for (char ch : v.toCharArray()) {
                if (ch == '"' || ch == '\\') b.append('\\').append(ch);
                else if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
                else b.append(ch);
            }
            return b.append('"').toString();
        }

        private void space() {
            while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0) i++;
        }

        private boolean eat(char c) {
            space();
            if (i < s.length() && s.charAt(i) == c) {
                i++;
                return true;
            }
            return false;
        }

        private void expect(char c) {
            if (!eat(c)) throw new IllegalArgumentException("expected " + c + " at " + i);
        }

        private Object value() {
            space();
            if (i >= s.length()) throw new IllegalArgumentException("unexpected end");
            char c = s.charAt(i);
            if (c == '{') {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                if (eat('}')) return m;
                do {
                    space();
                    String k = string();
                    expect(':');
                    if (m.containsKey(k)) throw new IllegalArgumentException("repeated member " + k);
                    m.put(k, value());
                } while (eat(','));
                expect('}');
                return m;
            }
            if (c == '[') {
                i++;
                List<Object> l = new ArrayList<>();
                if (eat(']')) return l;
                do l.add(value()); while (eat(','));
                expect(']');
                return l;
            }
            if (c == '"') return string();
            for (String word : List.of("true", "false", "null")) {
                if (s.startsWith(word, i)) {
                    i += word.length();
                    return word.equals("null") ? null : Boolean.valueOf(word);
                }
            }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            String n = s.substring(start, i);
            if (!n.matches("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")) throw new IllegalArgumentException("bad value at " + start);
            return n.matches("-?[0-9]+") ? (Object) Long.valueOf(n) : (Object) Double.valueOf(n);
        }

        private String string() {
            if (i >= s.length() || s.charAt(i) != '"') throw new IllegalArgumentException("expected a string at " + i);
            StringBuilder b = new StringBuilder();
            for (i++; ; i++) {
                if (i >= s.length()) throw new IllegalArgumentException("unterminated string");
                char c = s.charAt(i);
                if (c == '"') {
                    i++;
                    return b.toString();
                }
                if (c < 0x20) throw new IllegalArgumentException("control character in a string");
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                char e = s.charAt(++i);
                switch (e) {
                    case '"', '\\', '/' -> b.append(e);
                    case 'b' -> b.append('\b');
                    case 'f' -> b.append('\f');
                    case 'n' -> b.append('\n');
                    case 'r' -> b.append('\r');
                    case 't' -> b.append('\t');
                    case 'u' -> {
                        b.append((char) Integer.parseInt(s.substring(i + 1, i + 5), 16));
                        i += 4;
                    }
                    default -> throw new IllegalArgumentException("bad escape");
                }
            }
        }
    }
}
