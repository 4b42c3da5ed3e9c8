//! One test per program and algorithm.

use super::*;

#[tokio::test]
async fn python_pyjwt_hs256() {
    kit(Lang::Python, Alg::Hs256).await
}

#[tokio::test]
async fn python_pyjwt_es256() {
    kit(Lang::Python, Alg::Es256).await
}

#[tokio::test]
async fn python_pyjwt_eddsa() {
    kit(Lang::Python, Alg::EdDsa).await
}

#[tokio::test]
async fn node_jose_hs256() {
    kit(Lang::Node, Alg::Hs256).await
}

#[tokio::test]
async fn node_jose_es256() {
    kit(Lang::Node, Alg::Es256).await
}

#[tokio::test]
async fn node_jose_eddsa() {
    kit(Lang::Node, Alg::EdDsa).await
}

#[tokio::test]
async fn java_jdk_hs256() {
    kit(Lang::Java, Alg::Hs256).await
}

#[tokio::test]
async fn java_jdk_es256() {
    kit(Lang::Java, Alg::Es256).await
}

#[tokio::test]
async fn java_jdk_eddsa() {
    kit(Lang::Java, Alg::EdDsa).await
}

#[tokio::test]
async fn go_stdlib_hs256() {
    kit(Lang::Go, Alg::Hs256).await
}

#[tokio::test]
async fn go_stdlib_es256() {
    kit(Lang::Go, Alg::Es256).await
}

#[tokio::test]
async fn go_stdlib_eddsa() {
    kit(Lang::Go, Alg::EdDsa).await
}

/// The README shows the kit's code as excerpts, each after a `<!-- kit: PATH -->` line:
/// every excerpt must be in its file verbatim, so the README cannot drift from the code.
#[test]
fn readme_excerpts_are_in_the_kit_files() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut seen = Vec::new();
    for (at, _) in readme.match_indices("<!-- kit: ") {
        let rest = &readme[at + "<!-- kit: ".len()..];
        let path = &rest[..rest.find(" -->").unwrap()];
        let fence = rest.find("\n```").unwrap();
        let code = &rest[fence + 4..];
        let code = &code[code.find('\n').unwrap() + 1..];
        let excerpt = &code[..code.find("```").unwrap()];
        assert!(excerpt.lines().count() >= 5, "{path}: a real excerpt");
        let file = std::fs::read_to_string(root().join(path)).unwrap();
        assert!(
            file.contains(excerpt),
            "README's excerpt of {path} is not in the file verbatim:\n{excerpt}"
        );
        seen.push(path.to_owned());
    }
    for lang in [
        "python/verify.py",
        "node/verify.mjs",
        "java/Verify.java",
        "go/verify.go",
    ] {
        assert!(
            seen.contains(&format!("examples/verify/{lang}")),
            "README shows examples/verify/{lang}"
        );
    }
}
