//! Certificates made at test time with rcgen, and the checks tests make on the chains the
//! daemons hand out.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

/// A node CA and a node certificate with its key, written as PEM files: what the x509pop
/// node attestor checks (server side) and presents (agent side).
#[derive(Debug)]
pub struct NodePki {
    /// The node CA (`node-root.pem`).
    pub root: PathBuf,
    /// The node's certificate (`node.pem`), for `node-1.example.org`.
    pub cert: PathBuf,
    /// The node's private key (`node.key`).
    pub key: PathBuf,
    /// The SHA-1 of the node certificate's DER, in lower-case hex: the last segment of the
    /// agent ID x509pop gives the node.
    pub leaf_sha1: String,
}

impl NodePki {
    /// Makes the CA and the node certificate and writes them into `dir`.
    pub fn write(dir: &Path) -> NodePki {
        let root_key = KeyPair::generate().expect("root key");
        let mut root_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Node Root");
        root_params.distinguished_name = name;
        let root = root_params.self_signed(&root_key).expect("root");
        let issuer = Issuer::from_params(&root_params, &root_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let mut leaf_params =
            CertificateParams::new(vec!["node-1.example.org".to_owned()]).expect("params");
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "node-1");
        leaf_params.distinguished_name = name;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        let pki = NodePki {
            root: dir.join("node-root.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node.key"),
            leaf_sha1: aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                leaf.der(),
            )
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        };
        std::fs::write(&pki.root, root.pem()).expect("write root");
        std::fs::write(&pki.cert, leaf.pem()).expect("write cert");
        std::fs::write(&pki.key, leaf_key.serialize_pem()).expect("write key");
        pki
    }
}

/// A PKCS#10 CSR (DER) for `key` with an empty subject and no SANs: what an agent sends, the
/// server fills in the SPIFFE ID.
pub fn csr_der(key: &KeyPair) -> Vec<u8> {
    CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(key)
        .expect("csr")
        .der()
        .to_vec()
}

/// Asserts that each certificate of `chain` (DER, leaf first) is signed by the next, the last
/// by one of `roots`, and that the leaf is valid now.
pub fn verify_chain(chain: &[Vec<u8>], roots: &[pem::Pem]) {
    fn parse(der: &[u8]) -> x509_parser::certificate::X509Certificate<'_> {
        x509_parser::parse_x509_certificate(der)
            .expect("certificate")
            .1
    }
    for pair in chain.windows(2) {
        let (child, issuer) = (parse(&pair[0]), parse(&pair[1]));
        child
            .verify_signature(Some(issuer.public_key()))
            .expect("signed by the next certificate");
    }
    let last = parse(chain.last().expect("non-empty chain"));
    let signed_by_root = roots.iter().any(|root| {
        let root = parse(root.contents());
        last.verify_signature(Some(root.public_key())).is_ok()
    });
    assert!(signed_by_root, "the chain ends at a bundle root");
    let now = x509_parser::time::ASN1Time::now();
    assert!(parse(&chain[0]).validity().is_valid_at(now));
}

/// A fresh self-signed CA certificate, DER: an authority to add to a bundle.
pub fn self_signed_ca_der() -> Vec<u8> {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .self_signed(&key)
        .expect("CA certificate")
        .der()
        .to_vec()
}
