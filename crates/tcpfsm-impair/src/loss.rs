//! The loss stage: Bernoulli, or the Gilbert–Elliott chain's state.

use crate::config::Loss;

/// The loss process of one direction: the Gilbert–Elliott state lives here (Bernoulli loss
/// has none).
#[derive(Debug, Clone, Default)]
pub(crate) struct LossProcess {
    bad: bool,
}

impl LossProcess {
    /// Whether the packet is lost, from two uniform draws in `[0, 1)`: `u_loss` decides the
    /// packet's fate in the current state, `u_step` the state transition that follows it (the
    /// order of netem's `loss_gilb_ell`).
    pub(crate) fn lose(&mut self, loss: &Loss, u_loss: f64, u_step: f64) -> bool {
        match *loss {
            Loss::None => false,
            Loss::Bernoulli(p) => u_loss < p,
            Loss::GilbertElliott(ge) => {
                let through = if self.bad { ge.h } else { ge.k };
                let lost = u_loss >= through;
                if self.bad {
                    if u_step < ge.r {
                        self.bad = false;
                    }
                } else if u_step < ge.p {
                    self.bad = true;
                }
                lost
            }
        }
    }
}
