//! The `tls_server_config` half of the web config: certificates, TLS
//! versions, cipher suites and curves by Go's names, and the client
//! certificate checks of each `client_auth_type` (and `client_allowed_sans`).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use super::TlsFile;
use crate::error::StartError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM input given inline or as a file (relative to `dir`).
fn pem_input(
    inline: Option<&String>,
    file: Option<&String>,
    dir: &Path,
    key: &str,
) -> Result<Option<(Vec<u8>, String)>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: both {key} and {key}_file are set; use one"
        )),
        (Some(text), None) => Ok(Some((
            text.as_bytes().to_vec(),
            format!("tls_server_config.{key}"),
        ))),
        (None, Some(f)) if !f.is_empty() => {
            let p = dir.join(f);
            std::fs::read(&p)
                .map(|bytes| Some((bytes, p.display().to_string())))
                .map_err(|e| {
                    format!(
                        "tls_server_config.{key}_file {}: cannot read: {e}",
                        p.display()
                    )
                })
        }
        _ => Ok(None),
    }
}

pub(super) fn build_tls(
    t: &TlsFile,
    dir: &Path,
    err: &dyn Fn(&str, String) -> StartError,
    warnings: &mut Vec<(&'static str, String)>,
) -> Result<ServerConfig, StartError> {
    let (cert_pem, cert_src) = pem_input(t.cert.as_ref(), t.cert_file.as_ref(), dir, "cert")
        .map_err(|m| err("cert_file", m))?
        .ok_or_else(|| {
            err(
                "tls_server_config",
                "tls_server_config: cert_file is required".into(),
            )
        })?;
    let (key_pem, key_src) = pem_input(t.key.as_ref(), t.key_file.as_ref(), dir, "key")
        .map_err(|m| err("key_file", m))?
        .ok_or_else(|| {
            err(
                "tls_server_config",
                "tls_server_config: key_file is required".into(),
            )
        })?;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            err(
                "cert_file",
                format!("{cert_src}: not a PEM certificate chain: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(err(
            "cert_file",
            format!("{cert_src}: no PEM certificate found"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        err(
            "key_file",
            format!("{key_src}: no usable PEM private key: {e}"),
        )
    })?;

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = t.cipher_suites.as_ref().filter(|v| !v.is_empty()) {
        let (suites, warning) = cipher_suites(names).map_err(|m| err("cipher_suites", m))?;
        provider.cipher_suites = suites;
        warnings.extend(warning.map(|w| ("cipher_suites", w)));
    }
    if let Some(names) = t.curve_preferences.as_ref().filter(|v| !v.is_empty()) {
        let (groups, warning) = curves(names).map_err(|m| err("curve_preferences", m))?;
        provider.kx_groups = groups;
        warnings.extend(warning.map(|w| ("curve_preferences", w)));
    }

    let (versions, warning) = versions(t.min_version.as_deref(), t.max_version.as_deref())
        .map_err(|m| err("min_version", m))?;
    warnings.extend(warning.map(|w| ("min_version", w)));
    let builder = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&versions)
        .map_err(|e| err("min_version", format!("tls_server_config: {e}")))?;

    let mut verifier = client_verifier(t, dir).map_err(|m| err("client_auth_type", m))?;
    if let Some(sans) = t.client_allowed_sans.as_ref().filter(|v| !v.is_empty()) {
        let kind = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
        let Some(inner) = verifier
            .take()
            .filter(|_| kind == "RequireAndVerifyClientCert")
        else {
            return Err(err(
                "client_allowed_sans",
                format!(
                    "tls_server_config.client_allowed_sans needs client_auth_type \
                     RequireAndVerifyClientCert (it is {kind})"
                ),
            ));
        };
        let (allowed, warning) = AllowedSans::new(inner, sans);
        warnings.extend(warning.map(|w| ("client_allowed_sans", w)));
        verifier = Some(Arc::new(allowed));
    }
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        let detail = match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the certificate".to_owned()
            }
            other => other.to_string(),
        };
        err(
            "key_file",
            format!("tls_server_config: {key_src} and {cert_src}: {detail}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(false);
    Ok(config)
}

/// The TLS versions to serve for `min_version`/`max_version`, and a warning
/// when TLS 1.0 or 1.1 was asked for (rustls serves 1.2 and 1.3 only).
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<
    (
        Vec<&'static rustls::SupportedProtocolVersion>,
        Option<String>,
    ),
    String,
> {
    fn rank(v: &str, key: &str) -> Result<u8, String> {
        match v {
            "TLS10" => Ok(0),
            "TLS11" => Ok(1),
            "TLS12" => Ok(2),
            "TLS13" => Ok(3),
            other => Err(format!(
                "tls_server_config.{key}: unknown TLS version {other:?}; use TLS10, TLS11, \
                 TLS12 or TLS13"
            )),
        }
    }
    let lo = min
        .map(|v| rank(v, "min_version"))
        .transpose()?
        .unwrap_or(2);
    let hi = max
        .map(|v| rank(v, "max_version"))
        .transpose()?
        .unwrap_or(3);
    if lo > hi {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let warning = (lo < 2).then(|| {
        format!(
            "tls_server_config: TLS {} cannot be served (rustls implements TLS 1.2 and 1.3 \
             only); serving TLS 1.2{}",
            if hi < 2 { "1.0/1.1 only" } else { "1.0/1.1" },
            if hi >= 3 { " and 1.3" } else { "" }
        )
    });
    let (lo, hi) = (lo.max(2), hi.max(2));
    let mut out = Vec::new();
    if lo <= 2 && 2 <= hi {
        out.push(&rustls::version::TLS12);
    }
    if lo <= 3 && 3 <= hi {
        out.push(&rustls::version::TLS13);
    }
    Ok((out, warning))
}

/// Go's `crypto/tls` cipher suite names that rustls does not implement
/// (CBC, RSA key exchange, RC4, 3DES): accepted, left out with a warning.
const GO_ONLY_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
];

/// The suites for `cipher_suites` (Go names). As in Go, the list limits
/// TLS 1.2 only: the TLS 1.3 suites are always offered.
fn cipher_suites(
    names: &[String],
) -> Result<(Vec<rustls::SupportedCipherSuite>, Option<String>), String> {
    let all = rustls::crypto::ring::default_provider().cipher_suites;
    let name_of = |s: &rustls::SupportedCipherSuite| s.suite().as_str().unwrap_or("");
    let mut tls12 = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        // Go also knows the ChaCha20 suites without their `_SHA256`.
        // rustls prefixes the TLS 1.3 suites with `TLS13_`.
        let full = if name.ends_with("_CHACHA20_POLY1305") {
            format!("{name}_SHA256")
        } else if let Some(rest) = name.strip_prefix("TLS_")
            && (rest.starts_with("AES_") || rest.starts_with("CHACHA20_"))
        {
            format!("TLS13_{rest}")
        } else {
            name.clone()
        };
        match all.iter().find(|s| name_of(s) == full) {
            Some(suite) if suite.tls13().is_some() => {}
            Some(suite) => {
                if !tls12
                    .iter()
                    .any(|s: &rustls::SupportedCipherSuite| s.suite() == suite.suite())
                {
                    tls12.push(*suite);
                }
            }
            None if GO_ONLY_SUITES.contains(&name.as_str()) => missing.push(name.as_str()),
            None => {
                return Err(format!(
                    "tls_server_config.cipher_suites: unknown cipher {name:?}; use Go's \
                     crypto/tls names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
                ));
            }
        }
    }
    let mut warning = (!missing.is_empty()).then(|| {
        format!(
            "tls_server_config.cipher_suites: {} not available in rustls, left out",
            missing.join(", ")
        )
    });
    let tls13 = all.iter().filter(|s| s.tls13().is_some()).copied();
    if tls12.is_empty() {
        warning = Some(format!(
            "{}; no listed TLS 1.2 suite is available, so TLS 1.2 uses rustls' defaults",
            warning.unwrap_or_else(|| "tls_server_config.cipher_suites".into())
        ));
        return Ok((all, warning));
    }
    Ok((tls13.chain(tls12).collect(), warning))
}

/// The key exchange groups for `curve_preferences` (Go names), in order.
fn curves(
    names: &[String],
) -> Result<
    (
        Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
        Option<String>,
    ),
    String,
> {
    use rustls::crypto::ring::kx_group;
    let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        let group: &'static dyn rustls::crypto::SupportedKxGroup = match name.as_str() {
            "X25519" => kx_group::X25519,
            "CurveP256" => kx_group::SECP256R1,
            "CurveP384" => kx_group::SECP384R1,
            "CurveP521" => {
                missing.push(name.as_str());
                continue;
            }
            other => {
                return Err(format!(
                    "tls_server_config.curve_preferences: unknown curve {other:?}; use \
                     CurveP256, CurveP384, CurveP521 or X25519"
                ));
            }
        };
        if !groups.iter().any(|g| g.name() == group.name()) {
            groups.push(group);
        }
    }
    let mut warning = (!missing.is_empty()).then(|| {
        format!(
            "tls_server_config.curve_preferences: {} not available in rustls, left out",
            missing.join(", ")
        )
    });
    if groups.is_empty() {
        warning = Some(format!(
            "{}; rustls' default groups are used",
            warning.unwrap_or_default()
        ));
        return Ok((rustls::crypto::ring::default_provider().kx_groups, warning));
    }
    Ok((groups, warning))
}

fn client_verifier(t: &TlsFile, dir: &Path) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let kind = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let ca = pem_input(
        t.client_ca.as_ref(),
        t.client_ca_file.as_ref(),
        dir,
        "client_ca",
    )?;
    let roots = |ca: Option<(Vec<u8>, String)>| -> Result<Arc<RootCertStore>, String> {
        let (pem, src) = ca.ok_or_else(|| {
            format!("tls_server_config.client_auth_type {kind} needs client_ca_file")
        })?;
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("{src}: not a PEM certificate: {e}"))?;
            store
                .add(cert)
                .map_err(|e| format!("{src}: unusable CA certificate: {e}"))?;
        }
        if store.is_empty() {
            return Err(format!("{src}: no PEM certificate found"));
        }
        Ok(Arc::new(store))
    };
    let webpki = |ca, optional: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let builder = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
    };
    match kind {
        "" | "NoClientCert" => {
            if ca.is_some() {
                return Err(
                    "tls_server_config: client_ca_file is set but client_auth_type is \
                     NoClientCert; set client_auth_type to RequireAndVerifyClientCert"
                        .into(),
                );
            }
            Ok(None)
        }
        "RequestClientCert" => Ok(Some(Arc::new(AnyClientCert::new(false)))),
        "RequireAnyClientCert" => Ok(Some(Arc::new(AnyClientCert::new(true)))),
        "VerifyClientCertIfGiven" => webpki(ca, true).map(Some),
        "RequireAndVerifyClientCert" => webpki(ca, false).map(Some),
        other => Err(format!(
            "tls_server_config.client_auth_type: unknown value {other:?}; use NoClientCert, \
             RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or \
             RequireAndVerifyClientCert"
        )),
    }
}

/// `client_allowed_sans`: a verified client certificate must also name one
/// of these DNS names or IP addresses among its subject alternative names.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<rustls::pki_types::ServerName<'static>>,
}

impl AllowedSans {
    /// Wraps `inner`; e-mail and URI entries, which this check cannot
    /// match, are named in the warning (leaving them out only narrows who
    /// may connect).
    fn new(inner: Arc<dyn ClientCertVerifier>, sans: &[String]) -> (Self, Option<String>) {
        let mut names = Vec::new();
        let mut unsupported = Vec::new();
        for san in sans {
            match rustls::pki_types::ServerName::try_from(san.clone()) {
                Ok(name) => names.push(name),
                Err(_) => unsupported.push(san.as_str()),
            }
        }
        let warning = (!unsupported.is_empty()).then(|| {
            format!(
                "tls_server_config.client_allowed_sans: {} matched only as DNS names or IP \
                 addresses; these entries allow no client",
                unsupported.join(", ")
            )
        });
        (AllowedSans { inner, names }, warning)
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self
            .names
            .iter()
            .any(|name| cert.verify_is_valid_for_subject_name(name).is_ok())
        {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `RequestClientCert` / `RequireAnyClientCert`: asks for a client
/// certificate and checks the handshake signature, but not the chain (Go's
/// semantics for these two modes).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl AnyClientCert {
    fn new(mandatory: bool) -> Self {
        AnyClientCert {
            mandatory,
            provider: provider(),
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_range() {
        assert_eq!(versions(None, None).expect("default").0.len(), 2);
        assert_eq!(versions(Some("TLS13"), None).expect("1.3 only").0.len(), 1);
        assert!(versions(Some("TLS13"), Some("TLS12")).is_err());
        assert!(versions(Some("SSL3"), None).is_err());
        // Go's TLS 1.0/1.1 floors: accepted, served as TLS 1.2+, said once.
        for old in ["TLS10", "TLS11"] {
            let (v, warning) = versions(Some(old), None).expect("accepted");
            assert_eq!(v.len(), 2, "{old}");
            let warning = warning.expect("a warning");
            assert!(warning.contains("serving TLS 1.2 and 1.3"), "{warning}");
        }
        let (v, warning) = versions(Some("TLS10"), Some("TLS11")).expect("accepted");
        assert_eq!(v.len(), 1, "TLS 1.2 only");
        assert!(warning.is_some());
        assert!(versions(None, None).expect("default").1.is_none());
    }

    #[test]
    fn cipher_suites_by_go_name() {
        let (suites, warning) = cipher_suites(&[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305".into(),
            "TLS_AES_128_GCM_SHA256".into(),
        ])
        .expect("known names");
        assert!(warning.is_none());
        let tls12: Vec<_> = suites.iter().filter(|s| s.tls13().is_none()).collect();
        assert_eq!(tls12.len(), 2, "only the listed TLS 1.2 suites");
        assert!(suites.iter().filter(|s| s.tls13().is_some()).count() >= 2);

        let (suites, warning) = cipher_suites(&[
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA".into(),
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".into(),
        ])
        .expect("a Go-only suite is accepted");
        assert!(
            warning
                .expect("warned")
                .contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
        );
        assert_eq!(suites.iter().filter(|s| s.tls13().is_none()).count(), 1);

        let e = cipher_suites(&["TLS_NOT_A_SUITE".into()]).expect_err("unknown");
        assert!(e.contains("unknown cipher \"TLS_NOT_A_SUITE\""), "{e}");
    }

    #[test]
    fn curves_by_go_name() {
        let (groups, warning) =
            curves(&["CurveP384".into(), "X25519".into()]).expect("known names");
        assert!(warning.is_none());
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0].name(),
            rustls::NamedGroup::secp384r1,
            "order kept"
        );
        let (groups, warning) =
            curves(&["CurveP521".into(), "CurveP256".into()]).expect("P-521 accepted");
        assert_eq!(groups.len(), 1);
        assert!(warning.expect("warned").contains("CurveP521"));
        assert!(curves(&["CurveP999".into()]).is_err());
    }
}
