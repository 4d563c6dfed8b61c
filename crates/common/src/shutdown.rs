//! Stopping: one signal future for SIGINT and SIGTERM, and the token that
//! tells every part of a service (listener, background tasks) to stop.

use tokio_util::sync::CancellationToken;

/// Completes when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT, stopping"),
        () = terminate => tracing::info!("received SIGTERM, stopping"),
    }
}

/// A stop token that is cancelled when the process receives SIGINT or SIGTERM.
///
/// Binaries use this; tests and the all-in-one `shop` make their own
/// [`CancellationToken`] and cancel it when they choose.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        signal().await;
        trigger.cancel();
    });
    token
}
