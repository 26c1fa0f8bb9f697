//! The idle list of a pool: the most recently used connection first, closed ones dropped,
//! at most `max` kept. Generic over the connection (as pingora-pool's), so that its rules are
//! tested without sockets.

use std::collections::VecDeque;
use std::sync::Mutex;

/// What the idle list needs to know of a connection.
pub trait Reusable {
    /// The peer closed it, or its own timer did: it can take no request.
    fn is_closed(&self) -> bool;
}

pub struct IdleList<C> {
    max: usize,
    /// Most recently used at the back.
    conns: Mutex<VecDeque<C>>,
}

impl<C: Reusable> IdleList<C> {
    pub fn new(max: usize) -> Self {
        IdleList {
            max,
            conns: Mutex::new(VecDeque::new()),
        }
    }

    /// The most recently used connection that is still open; closed ones met on the way go.
    /// The most recent first: it is the least likely to be at the end of the upstream's
    /// keep-alive timeout.
    pub fn take(&self) -> Option<C> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(conn) = conns.pop_back() {
            if !conn.is_closed() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps an open connection for the next request, unless `max` are kept already.
    pub fn give_back(&self, conn: C) {
        if conn.is_closed() {
            return;
        }
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest sit at the front: drop the closed ones while we are here.
        while conns.front().is_some_and(C::is_closed) {
            conns.pop_front();
        }
        if conns.len() < self.max {
            conns.push_back(conn);
        }
    }

    /// Connections kept now (for tests).
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.conns.lock().map_or(0, |conns| conns.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A connection that is a number, closed when its flag says so.
    #[derive(Clone)]
    struct Fake(u32, Arc<AtomicBool>);

    impl Fake {
        fn open(n: u32) -> Self {
            Fake(n, Arc::new(AtomicBool::new(false)))
        }
        fn close(&self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }

    impl Reusable for Fake {
        fn is_closed(&self) -> bool {
            self.1.load(Ordering::SeqCst)
        }
    }

    fn taken(list: &IdleList<Fake>) -> Option<u32> {
        list.take().map(|c| c.0)
    }

    #[test]
    fn the_most_recently_used_is_taken_first() {
        let list = IdleList::new(4);
        for n in 1..=3 {
            list.give_back(Fake::open(n));
        }
        assert_eq!(taken(&list), Some(3));
        assert_eq!(taken(&list), Some(2));
        assert_eq!(taken(&list), Some(1));
        assert_eq!(taken(&list), None);
    }

    #[test]
    fn a_connection_closed_while_idle_is_never_taken() {
        let list = IdleList::new(4);
        let (a, b) = (Fake::open(1), Fake::open(2));
        list.give_back(a.clone());
        list.give_back(b.clone());
        b.close();
        assert_eq!(taken(&list), Some(1), "the closed one skipped and dropped");
        assert_eq!(list.kept(), 0);
        a.close();
        list.give_back(a);
        assert_eq!(list.kept(), 0, "a closed connection is not kept");
    }

    #[test]
    fn closed_ones_at_the_old_end_go_when_one_comes_back() {
        let list = IdleList::new(4);
        let old = Fake::open(1);
        list.give_back(old.clone());
        list.give_back(Fake::open(2));
        old.close();
        list.give_back(Fake::open(3));
        assert_eq!(list.kept(), 2);
        assert_eq!(taken(&list), Some(3));
        assert_eq!(taken(&list), Some(2));
    }

    #[test]
    fn at_most_max_are_kept() {
        let list = IdleList::new(2);
        for n in 1..=5 {
            list.give_back(Fake::open(n));
        }
        assert_eq!(list.kept(), 2);
        assert_eq!(
            taken(&list),
            Some(2),
            "the first two kept, later ones dropped"
        );
        let none = IdleList::new(0);
        none.give_back(Fake::open(1));
        assert_eq!(taken(&none), None, "pool_max_idle = 0 keeps nothing");
    }
}
