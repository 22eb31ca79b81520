//! Keys and the key managers: generation, PKCS#8 round trips, redaction, and the disk
//! manager's files (mode, atomic replacement, reload, corruption).

use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn every_key_type_generates_and_round_trips_through_pkcs8() {
    for key_type in KeyType::ALL {
        let key = Key::generate("k", key_type).unwrap();
        assert_eq!(key.key_type(), key_type);
        let again = Key::from_pkcs8_der("k2", key.secret_pkcs8_der()).unwrap();
        assert_eq!(again.key_type(), key_type);
        assert_eq!(again.public_key_der(), key.public_key_der());
        assert_eq!(again.id(), "k2");
    }
}

#[test]
fn unsupported_pkcs8_keys_are_refused() {
    let p521 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let err = Key::from_pkcs8_der("k", p521.serialized_der()).unwrap_err();
    assert!(matches!(err, KeyError::UnsupportedKey { .. }), "{err}");
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    assert!(Key::from_pkcs8_der("k", ed.serialized_der()).is_err());
    assert!(Key::from_pkcs8_der("k", b"not a key").is_err());
}

#[test]
fn debug_output_never_shows_the_secret() {
    let key = Key::generate("x509-CA-A", KeyType::EcP256).unwrap();
    let debug = format!("{key:?}");
    assert_eq!(
        debug,
        "Key { id: \"x509-CA-A\", key_type: EcP256, secret: \"<redacted>\" }"
    );
    let manager = MemoryKeyManager::new();
    manager.generate_key("a", KeyType::EcP256).unwrap();
    let debug = format!("{manager:?}");
    assert!(
        debug.contains("<redacted>") && !debug.contains("serialized_der"),
        "{debug}"
    );
}

#[test]
fn key_ids_must_be_file_name_safe() {
    for bad in ["", ".hidden", "../escape", "a/b", "spaces here", "é"] {
        let err = Key::generate(bad, KeyType::EcP256).unwrap_err();
        assert!(
            matches!(err, KeyError::InvalidKeyId { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(Key::generate(&"x".repeat(129), KeyType::EcP256).is_err());
    Key::generate(&"x".repeat(128), KeyType::EcP256).unwrap();
    Key::generate("JWT-Signer-B_1.2", KeyType::EcP256).unwrap();
}

#[test]
fn memory_manager_generates_replaces_and_lists() {
    let manager = MemoryKeyManager::new();
    assert!(manager.key("x509-CA-A").unwrap().is_none());
    let first = manager.generate_key("x509-CA-A", KeyType::EcP256).unwrap();
    manager
        .generate_key("JWT-Signer-A", KeyType::EcP384)
        .unwrap();
    let fetched = manager.key("x509-CA-A").unwrap().unwrap();
    assert_eq!(fetched.public_key_der(), first.public_key_der());
    let replaced = manager.generate_key("x509-CA-A", KeyType::Rsa2048).unwrap();
    assert_ne!(replaced.public_key_der(), first.public_key_der());
    let ids: Vec<String> = manager
        .keys()
        .unwrap()
        .iter()
        .map(|k| k.id().to_owned())
        .collect();
    assert_eq!(ids, vec!["JWT-Signer-A", "x509-CA-A"]);
}

#[test]
fn disk_manager_creates_a_private_directory_and_0600_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("keys");
    let manager = DiskKeyManager::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    manager.generate_key("x509-CA-A", KeyType::EcP256).unwrap();
    let path = manager.key_path("x509-CA-A");
    assert_eq!(path, dir.join("x509-CA-A.pkcs8"));
    assert_eq!(mode(&path), 0o600);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["x509-CA-A.pkcs8"],
        "no temporary file is left behind"
    );
}

#[test]
fn disk_manager_reloads_keys_in_a_new_instance() {
    let dir = tempfile::tempdir().unwrap();
    let first = DiskKeyManager::open(dir.path()).unwrap();
    let a = first.generate_key("x509-CA-A", KeyType::EcP384).unwrap();
    let b = first
        .generate_key("JWT-Signer-A", KeyType::Rsa2048)
        .unwrap();
    let a2 = first.generate_key("x509-CA-A", KeyType::EcP256).unwrap();
    assert_ne!(a.public_key_der(), a2.public_key_der());
    drop(first);

    let second = DiskKeyManager::open(dir.path()).unwrap();
    let loaded = second.key("x509-CA-A").unwrap().unwrap();
    assert_eq!(loaded.key_type(), KeyType::EcP256);
    assert_eq!(
        loaded.public_key_der(),
        a2.public_key_der(),
        "the replacement survived"
    );
    let loaded_b = second.key("JWT-Signer-A").unwrap().unwrap();
    assert_eq!(loaded_b.public_key_der(), b.public_key_der());
    assert_eq!(second.keys().unwrap().len(), 2);
}

#[test]
fn corrupt_key_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    DiskKeyManager::open(dir.path())
        .unwrap()
        .generate_key("x509-CA-A", KeyType::EcP256)
        .unwrap();
    let path = dir.path().join("x509-CA-A.pkcs8");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).unwrap();
    let err = DiskKeyManager::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, KeyError::KeyFileCorrupt { path: p, .. } if *p == path),
        "{err}"
    );
    assert!(err.to_string().contains("x509-CA-A.pkcs8"), "{err}");

    std::fs::write(&path, b"").unwrap();
    let err = DiskKeyManager::open(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::KeyFileCorrupt { .. }), "{err}");
}

#[test]
fn readable_by_others_key_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    DiskKeyManager::open(dir.path())
        .unwrap()
        .generate_key("JWT-Signer-B", KeyType::EcP256)
        .unwrap();
    let path = dir.path().join("JWT-Signer-B.pkcs8");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = DiskKeyManager::open(dir.path()).unwrap_err();
    assert!(
        matches!(&err, KeyError::KeyFilePermissions { path: p, mode: 0o644 } if *p == path),
        "{err}"
    );
    assert!(err.to_string().contains("JWT-Signer-B.pkcs8"), "{err}");
}

#[test]
fn group_writable_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let err = DiskKeyManager::open(dir.path()).unwrap_err();
    assert!(matches!(err, KeyError::KeyDirPermissions { .. }), "{err}");
}

#[test]
fn leftover_temporary_files_are_removed_and_other_files_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join(".x509-CA-A.pkcs8.tmp-0011223344556677");
    std::fs::write(&temp, b"half a key").unwrap();
    std::fs::write(dir.path().join("README"), b"not a key").unwrap();
    let manager = DiskKeyManager::open(dir.path()).unwrap();
    assert!(!temp.exists());
    assert!(manager.keys().unwrap().is_empty());
    assert!(manager.key("../README").is_err());
}
