//! Fair turns: how many requests do their work (policy check, component call) at
//! once, and who goes next when all turns are taken. Waiting requests queue per
//! tenant; a freed turn goes to the waiting tenant that has had the least turn
//! time (start-time fair queuing, by time rather than by request, so that long
//! calls count for what they take). A tenant with one request waiting gets the
//! next free turn however much a flooding tenant has queued: its wait is one
//! request's work, not the flood's. Kubernetes' API Priority and Fairness shares
//! a server the same way.

use crate::sync::Lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

pub struct Turns {
    state: Mutex<State>,
}

struct State {
    free: usize,
    tenants: HashMap<Arc<str>, Flow>,
    /// The turn time of the tenant served last: where a tenant that was idle
    /// starts again, so that no tenant banks credit while idle.
    floor: u128,
}

/// One tenant's waiting requests and its turn time.
#[derive(Default)]
struct Flow {
    /// Nanoseconds of turns it has held (from `floor` when it came back).
    used: u128,
    /// First come first served within the tenant.
    waiting: VecDeque<oneshot::Sender<()>>,
}

/// A turn, given to the next waiter (or back) when dropped.
pub struct Turn {
    turns: Arc<Turns>,
    tenant: Arc<str>,
    since: Instant,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let held = self.since.elapsed().as_nanos();
        self.turns.release(Some((&self.tenant, held)));
    }
}

/// A waiter that gave up after its turn was handed over hands it on.
struct Waiting {
    rx: oneshot::Receiver<()>,
    turns: Arc<Turns>,
    granted: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.turns.release(None);
        }
    }
}

impl Turns {
    /// `capacity` turns (0: as many as the machine has cores).
    pub fn new(capacity: usize) -> Arc<Turns> {
        let capacity = match capacity {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Arc::new(Turns {
            state: Mutex::new(State {
                free: capacity,
                tenants: HashMap::new(),
                floor: 0,
            }),
        })
    }

    /// A turn for one of `tenant`'s requests, waiting for it when all are taken.
    pub async fn take(self: &Arc<Turns>, tenant: &str) -> Turn {
        let (tenant, rx) = {
            let mut state = self.state.locked();
            let state = &mut *state;
            let tenant = match state.tenants.get_key_value(tenant) {
                Some((known, _)) => known.clone(),
                None => Arc::from(tenant),
            };
            let flow = state.tenants.entry(tenant.clone()).or_default();
            if state.free > 0 {
                state.free -= 1;
                return self.turn(tenant);
            }
            if flow.waiting.is_empty() {
                flow.used = flow.used.max(state.floor);
            }
            let (tx, rx) = oneshot::channel();
            flow.waiting.push_back(tx);
            (tenant, rx)
        };
        let mut waiting = Waiting {
            rx,
            turns: self.clone(),
            granted: false,
        };
        // The sender is dropped only by handing the turn over.
        let _ = (&mut waiting.rx).await;
        waiting.granted = true;
        self.turn(tenant)
    }

    fn turn(self: &Arc<Turns>, tenant: Arc<str>) -> Turn {
        Turn {
            turns: self.clone(),
            tenant,
            since: Instant::now(),
        }
    }

    /// Counts a returned turn's time to its tenant (`None`: a handed-over turn
    /// whose waiter gave up), then hands the turn to the first waiter of the
    /// waiting tenant with the least turn time, or frees it.
    fn release(&self, held: Option<(&str, u128)>) {
        let mut state = self.state.locked();
        let state = &mut *state;
        if let Some((tenant, nanos)) = held
            && let Some(flow) = state.tenants.get_mut(tenant)
        {
            flow.used += nanos;
        }
        while let Some(flow) = state
            .tenants
            .values_mut()
            .filter(|flow| !flow.waiting.is_empty())
            .min_by_key(|flow| flow.used)
        {
            state.floor = flow.used;
            if flow
                .waiting
                .pop_front()
                .is_some_and(|waiter| waiter.send(()).is_ok())
            {
                return;
            }
            // That waiter gave up: the next one.
        }
        state.free += 1;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use std::time::Duration;

    /// Tasks of `tenant` that each take a turn and note their name in `order`.
    fn queue(
        turns: &Arc<Turns>,
        tenant: &'static str,
        n: usize,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n)
            .map(|_| {
                let (turns, order) = (turns.clone(), order.clone());
                tokio::spawn(async move {
                    let _turn = turns.take(tenant).await;
                    order.locked().push(tenant);
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn a_freed_turn_goes_to_the_waiting_tenant_with_the_least_turn_time_not_the_flood() {
        let turns = Turns::new(1);
        let held = turns.take("noisy").await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = queue(&turns, "noisy", 5, &order);
        tokio::time::sleep(Duration::from_millis(20)).await;
        tasks.extend(queue(&turns, "quiet", 1, &order));
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        let order = order.locked().clone();
        assert_eq!(order.len(), 6);
        assert!(
            order.iter().position(|t| *t == "quiet").unwrap() <= 1,
            "quiet waited behind the flood: {order:?}"
        );
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_loses_no_turn() {
        let turns = Turns::new(1);
        let held = turns.take("a").await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), turns.take("b")).await;
        assert!(gave_up.is_err());
        drop(held);
        // The one turn is free again: taken at once, twice in a row.
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_millis(100), turns.take("c"))
                .await
                .unwrap();
        }
    }
}
