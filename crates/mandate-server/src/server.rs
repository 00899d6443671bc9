//! A bound server: its port, its routes and what it keeps alive while it
//! serves — built by [`crate::serve::bind`] or by the standalone issuer —
//! and how it stops: it stops accepting, ends revocation streams so
//! subscribers move on, lets in-flight requests finish within the grace
//! period, closes the audit trail and flushes the store. While it serves,
//! clients are held to [`ClientLimits`]: request headers and bodies within
//! their timeouts, a bounded number of connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use mandate_audit::AuditWriter;
use mandate_registry::{ClientLimits, RegistryState, Subscription};

use crate::key_follower::FollowerTask;

/// A server that holds its port and is ready to [`Server::run`].
pub struct Server {
    pub(crate) listener: std::net::TcpListener,
    pub(crate) address: SocketAddr,
    pub(crate) app: Router,
    pub(crate) registry: Option<RegistryState>,
    pub(crate) tls: Option<axum_server::tls_rustls::RustlsConfig>,
    pub(crate) grace: std::time::Duration,
    /// The audit writer, closed (head signed, flushed) on shutdown.
    pub(crate) audit: Option<Arc<AuditWriter>>,
    /// Keeps the subscription to a remote registry alive.
    pub(crate) _subscription: Option<Subscription>,
    /// Keeps the followed root key set current.
    pub(crate) _follower: Option<FollowerTask>,
    /// Follows the other replicas' appends to a shared store.
    pub(crate) _listener: Option<mandate_postgres::revocations::ChangeListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.address)
            .field("registry", &self.registry.is_some())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server of `app` on `listener`, with no registry of its own (the
    /// issuer, say).
    pub(crate) fn from_parts(
        listener: std::net::TcpListener,
        app: Router,
        tls: Option<axum_server::tls_rustls::RustlsConfig>,
        grace: std::time::Duration,
    ) -> Result<Server> {
        let address = listener.local_addr()?;
        Ok(Server {
            listener,
            address,
            app,
            registry: None,
            audit: None,
            tls,
            grace,
            _subscription: None,
            _follower: None,
            _listener: None,
        })
    }

    /// Closes `audit` (signs its head, flushes) on shutdown.
    pub(crate) fn with_audit(mut self, audit: Option<Arc<AuditWriter>>) -> Server {
        self.audit = audit;
        self
    }

    /// Keeps `subscription` running for as long as the server.
    pub(crate) fn with_subscription(mut self, subscription: Option<Subscription>) -> Server {
        self._subscription = subscription;
        self
    }

    /// Keeps `listener` (a shared store's) running for as long as the server.
    pub(crate) fn with_listener(
        mut self,
        listener: Option<mandate_postgres::revocations::ChangeListener>,
    ) -> Server {
        self._listener = listener;
        self
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Whether clients must speak TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` resolves, then drains: no new connections,
    /// revocation streams ended, in-flight requests given the grace period,
    /// the store flushed.
    ///
    /// # Errors
    /// The server failing, or the final flush failing.
    pub async fn run<F>(self, shutdown: F) -> Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = axum_server::Handle::new();
        let drain = handle.clone();
        let streams = self.registry.clone();
        let grace = self.grace;
        let stopper = tokio::spawn(async move {
            shutdown.await;
            tracing::info!(
                ?grace,
                "shutting down: no new connections, finishing requests"
            );
            if let Some(registry) = streams {
                registry.shutdown_streams();
            }
            drain.graceful_shutdown(Some(grace));
        });
        // Clients send their headers and bodies within the timeouts, and hold at
        // most so many connections; responses (event streams) are not bounded.
        let limits = ClientLimits::from_env();
        let service = limits
            .bound_bodies(self.app)
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = match self.tls {
            Some(tls) => {
                limits
                    .apply(axum_server::from_tcp_rustls(self.listener, tls))
                    .handle(handle)
                    .serve(service)
                    .await
            }
            None => {
                limits
                    .apply(axum_server::from_tcp(self.listener))
                    .handle(handle)
                    .serve(service)
                    .await
            }
        };
        // A server that failed leaves no task holding the registry (and its store).
        stopper.abort();
        let mut flushed = match &self.registry {
            Some(registry) => registry.flush().await.context("flushing the store"),
            None => Ok(()),
        };
        if let Some(audit) = &self.audit {
            let closed = audit.close().await.context("closing the audit log");
            flushed = flushed.and(closed);
        }
        if let Err(error) = &flushed {
            tracing::error!(error = %format!("{error:#}"), "flushing on shutdown failed");
        }
        served.context("serving")?;
        tracing::info!("stopped");
        flushed
    }
}
