//! Fair turns: how many requests do their work (policy check, component call) at
//! once, and who goes next when all turns are taken. Waiting requests queue per
//! tenant; a freed turn goes to the waiting tenant that has had the least turn
//! time (start-time fair queuing, by time rather than by request, so that long
//! calls count for what they take). A tenant with one request waiting gets the
//! next free turn however much a flooding tenant has queued: its wait is one
//! request's work, not the flood's. Kubernetes' API Priority and Fairness shares
//! a server the same way.
//!
//! While more than one tenant is active, no tenant holds every turn: `reserved`
//! turns stay free for the others, so that another tenant's request starts at
//! once instead of after a call, and the flood cannot fill every core (measured:
//! on 2 cores a quiet tenant's p99 under a flood halves). A tenant alone uses all.

use crate::sync::Lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The turns one tenant may not take while another is active.
#[derive(Clone, Copy)]
pub struct Reserve {
    pub turns: usize,
    /// How long after its last request another tenant still counts as active.
    pub idle: Duration,
}

pub struct Turns {
    /// The most turns one tenant holds while another is active.
    shared_cap: usize,
    idle: Duration,
    state: Mutex<State>,
}

struct State {
    free: usize,
    tenants: HashMap<Arc<str>, Flow>,
    /// The turn time of the tenant served last: where a tenant that was idle
    /// starts again, so that no tenant banks credit while idle.
    floor: u128,
    /// The two tenants that asked last (distinct, latest first) and when: enough
    /// to tell whether any tenant other than a given one is active.
    recent: [Option<(Arc<str>, Instant)>; 2],
}

/// One tenant's waiting requests and its turn time.
#[derive(Default)]
struct Flow {
    /// Nanoseconds of turns it has held (from `floor` when it came back).
    used: u128,
    /// Turns it holds now.
    holding: usize,
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
        self.turns.release(&self.tenant, held);
    }
}

/// A waiter that gave up after its turn was handed over hands it on.
struct Waiting {
    rx: oneshot::Receiver<()>,
    turns: Arc<Turns>,
    tenant: Arc<str>,
    granted: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.granted {
            return;
        }
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.turns.release(&self.tenant, 0);
        }
    }
}

impl Turns {
    /// `capacity` turns (0: as many as the machine has cores), of which one
    /// tenant leaves `reserve.turns` to the others while they are active.
    pub fn new(capacity: usize, reserve: Reserve) -> Arc<Turns> {
        let capacity = match capacity {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Arc::new(Turns {
            shared_cap: capacity.saturating_sub(reserve.turns).max(1),
            idle: reserve.idle,
            state: Mutex::new(State {
                free: capacity,
                tenants: HashMap::new(),
                floor: 0,
                recent: [None, None],
            }),
        })
    }

    /// A turn for one of `tenant`'s requests, waiting for it when none is free
    /// for it.
    pub async fn take(self: &Arc<Turns>, tenant: &str) -> Turn {
        let now = Instant::now();
        let (tenant, rx) = {
            let mut state = self.state.locked();
            let state = &mut *state;
            let tenant = match state.tenants.get_key_value(tenant) {
                Some((known, _)) => known.clone(),
                None => Arc::from(tenant),
            };
            state.seen(&tenant, now);
            let others = state.others_active(&tenant, now, self.idle);
            let flow = state.tenants.entry(tenant.clone()).or_default();
            if state.free > 0 && self.may_take(flow, others) {
                state.free -= 1;
                flow.holding += 1;
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
            tenant: tenant.clone(),
            granted: false,
        };
        // The sender is dropped only by handing the turn over.
        let _ = (&mut waiting.rx).await;
        waiting.granted = true;
        self.turn(tenant)
    }

    fn may_take(&self, flow: &Flow, others_active: bool) -> bool {
        flow.holding < self.shared_cap || !others_active
    }

    fn turn(self: &Arc<Turns>, tenant: Arc<str>) -> Turn {
        Turn {
            turns: self.clone(),
            tenant,
            since: Instant::now(),
        }
    }

    /// Counts a returned turn's time (`nanos`) to its tenant, then hands the
    /// free turns out: each to the first waiter of the waiting tenant with the
    /// least turn time among those that may take one.
    fn release(&self, tenant: &str, nanos: u128) {
        let now = Instant::now();
        let mut state = self.state.locked();
        let state = &mut *state;
        if let Some(flow) = state.tenants.get_mut(tenant) {
            flow.used += nanos;
            flow.holding -= 1;
        }
        state.free += 1;
        while state.free > 0 {
            let Some(next) = state
                .tenants
                .iter()
                .filter(|(tenant, flow)| {
                    !flow.waiting.is_empty()
                        && self.may_take(flow, state.others_active(tenant, now, self.idle))
                })
                .min_by_key(|(_, flow)| flow.used)
                .map(|(tenant, _)| tenant.clone())
            else {
                return;
            };
            let Some(flow) = state.tenants.get_mut(&next) else {
                return;
            };
            // A waiter that gave up is skipped.
            if flow
                .waiting
                .pop_front()
                .is_some_and(|waiter| waiter.send(()).is_ok())
            {
                state.floor = flow.used;
                state.free -= 1;
                flow.holding += 1;
            }
        }
    }
}

impl State {
    /// Notes that `tenant` asked for a turn at `now`.
    fn seen(&mut self, tenant: &Arc<str>, now: Instant) {
        match &mut self.recent {
            [Some((latest, at)), _] if latest == tenant => *at = now,
            [first, second] => *second = first.replace((tenant.clone(), now)),
        }
    }

    /// Whether a tenant other than `tenant` asked within `idle` of `now`. The
    /// latest other one is always among the two kept.
    fn others_active(&self, tenant: &str, now: Instant, idle: Duration) -> bool {
        self.recent
            .iter()
            .flatten()
            .any(|(other, at)| &**other != tenant && now.duration_since(*at) < idle)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use std::time::Duration;

    const NONE: Reserve = Reserve {
        turns: 0,
        idle: Duration::ZERO,
    };

    /// Two turns, one of them reserved while another tenant asked within `idle`.
    fn two_one_reserved(idle: Duration) -> Arc<Turns> {
        Turns::new(2, Reserve { turns: 1, idle })
    }

    /// Whether `tenant` gets a turn within 20 ms (holding it in `held`).
    async fn gets_one(turns: &Arc<Turns>, tenant: &str, held: &mut Vec<Turn>) -> bool {
        match tokio::time::timeout(Duration::from_millis(20), turns.take(tenant)).await {
            Ok(turn) => {
                held.push(turn);
                true
            }
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_tenant_leaves_the_reserved_turn_free_while_another_is_active() {
        let turns = two_one_reserved(Duration::from_secs(60));
        drop(turns.take("quiet").await);
        let mut held = Vec::new();
        assert!(gets_one(&turns, "noisy", &mut held).await);
        assert!(
            !gets_one(&turns, "noisy", &mut held).await,
            "took the reserve"
        );
        assert!(gets_one(&turns, "quiet", &mut held).await);
    }

    #[tokio::test]
    async fn a_tenant_alone_takes_every_turn() {
        let turns = two_one_reserved(Duration::from_secs(60));
        let mut held = Vec::new();
        assert!(gets_one(&turns, "noisy", &mut held).await);
        assert!(gets_one(&turns, "noisy", &mut held).await);
        assert!(!gets_one(&turns, "noisy", &mut held).await);
    }

    #[tokio::test]
    async fn the_reserve_lapses_when_the_other_tenant_goes_idle() {
        let turns = two_one_reserved(Duration::from_millis(30));
        drop(turns.take("quiet").await);
        let mut held = Vec::new();
        assert!(gets_one(&turns, "noisy", &mut held).await);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(gets_one(&turns, "noisy", &mut held).await);
    }

    #[tokio::test]
    async fn a_freed_turn_skips_a_tenant_at_its_share_for_one_that_may_take_it() {
        let turns = two_one_reserved(Duration::from_secs(60));
        let mut held = Vec::new();
        // Both turns taken by "a" alone, then "b" arrives and waits.
        assert!(gets_one(&turns, "a", &mut held).await);
        assert!(gets_one(&turns, "a", &mut held).await);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = queue(&turns, "a", 2, &order);
        tokio::time::sleep(Duration::from_millis(10)).await;
        tasks.extend(queue(&turns, "b", 1, &order));
        tokio::time::sleep(Duration::from_millis(10)).await;
        // "a" gives one back: it still holds one, its share while "b" is active.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*order.locked(), ["b"]);
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(order.locked().len(), 3);
    }

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
        let turns = Turns::new(1, NONE);
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
        let turns = Turns::new(1, NONE);
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
