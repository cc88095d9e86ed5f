//! SIGINT/SIGTERM -> [`CancelToken`]: the first signal cancels every build
//! (each then deletes what it made, or leaves it with `--on-error=abort`);
//! a second one is answered with what is going on instead of killing the
//! cleanup; a third exits at once (130), pointing at `image-cli cleanup`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use image_aws::CancelToken;
use tokio::signal::unix::{signal, SignalKind};

/// What the handler saw.
#[derive(Debug, Clone, Default)]
pub struct Interrupts {
    count: Arc<AtomicUsize>,
    abort: Arc<AtomicBool>,
}

impl Interrupts {
    /// True once a signal arrived.
    pub fn interrupted(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }
}

/// Installs the handler (inside a tokio runtime). `on_error_abort`: the
/// builds leave their resources instead of deleting them, and the messages
/// say so.
pub fn install(cancel: CancelToken, on_error_abort: bool) -> std::io::Result<Interrupts> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let state = Interrupts::default();
    state.abort.store(on_error_abort, Ordering::SeqCst);
    let s = state.clone();
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = int.recv() => "interrupt",
                _ = term.recv() => "terminate",
            };
            let n = s.count.fetch_add(1, Ordering::SeqCst) + 1;
            let abort = s.abort.load(Ordering::SeqCst);
            match n {
                1 => {
                    cancel.cancel();
                    if abort {
                        eprintln!(
                            "\n{name}: cancelling the builds; --on-error=abort: what they made is left in AWS and listed below"
                        );
                    } else {
                        eprintln!(
                            "\n{name}: cancelling the builds and deleting what they made (press Ctrl-C again to see this again, three times to quit now)"
                        );
                    }
                }
                2 if abort => eprintln!(
                    "\n{name}: still stopping the builds (listing what is left); press again to quit now"
                ),
                2 => eprintln!(
                    "\n{name}: still cleaning up; press again to quit now and leave the rest behind (find it later with `image-cli cleanup`)"
                ),
                _ => {
                    eprintln!(
                        "\n{name}: quitting without finishing the cleanup; everything is tagged `image-builder:temporary`: run `image-cli cleanup --yes` to delete it"
                    );
                    std::process::exit(130);
                }
            }
        }
    });
    Ok(state)
}
