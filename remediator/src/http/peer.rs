//! The verified client certificate's subject CN, handed to the handlers.
//!
//! rustls verifies the certificate during the handshake; this acceptor runs after it, reads
//! the CN of the leaf certificate once per connection, and adds it to every request of that
//! connection as a [`ClientCertName`] extension, so the API can name an operator by their
//! certificate (`--auth.operator-client-cert`).

use std::future::Future;
use std::io;
use std::pin::Pin;

use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsAcceptor;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tower_http::add_extension::AddExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::state::ClientCertName;

/// [`RustlsAcceptor`], then the client certificate's CN as a request extension.
#[derive(Clone)]
pub struct PeerNameAcceptor {
    inner: RustlsAcceptor,
}

impl PeerNameAcceptor {
    pub fn new(inner: RustlsAcceptor) -> Self {
        PeerNameAcceptor { inner }
    }
}

impl<I, S> Accept<I, S> for PeerNameAcceptor
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = TlsStream<I>;
    type Service = AddExtension<S, ClientCertName>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            let name = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| common_name(leaf.as_ref()));
            Ok((stream, AddExtension::new(service, ClientCertName(name))))
        })
    }
}

/// The first subject CN of a DER certificate, if it parses and has one.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_common_name_is_read_and_garbage_gives_none() {
        let mut params =
            rcgen::CertificateParams::new(vec!["alice.example".to_string()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(common_name(cert.der()), Some("alice".to_string()));
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut params = params;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(common_name(cert.der()), None);
        assert_eq!(common_name(b"not a certificate"), None);
    }
}
