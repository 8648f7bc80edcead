//! Admission of TCP connections to the HTTP port, before any byte is read: how many are open per
//! client IP (counted at accept, released when the socket closes, WebSockets included), and how
//! many are not yet an authenticated WebSocket, against a node-wide cap.
//!
//! The accept loop asks `Admission::admit` for every accepted socket and closes it at once when
//! refused; the `Admitted` it gets travels with the connection (into the request extensions, and
//! into the WebSocket task after an upgrade), and the WebSocket endpoint marks it authenticated.
//! Dropping the last handle releases both counts. Nothing here reads or writes a socket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

/// The open connections of a node and their limits.
#[derive(Debug)]
pub struct Admission {
    /// Open TCP connections per client IP (0: no limit).
    per_ip: usize,
    /// Connections that are not an authenticated WebSocket, node-wide (0: no limit).
    max_unauthenticated: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    unauthenticated: AtomicUsize,
    refused: AtomicU64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its IP has `per_ip` connections open.
    PerIp,
    /// The node holds `max_unauthenticated` connections that have not authenticated.
    Unauthenticated,
}

impl Admission {
    pub fn new(per_ip: usize, max_unauthenticated: usize) -> Arc<Admission> {
        Arc::new(Admission {
            per_ip,
            max_unauthenticated,
            open: Mutex::new(HashMap::new()),
            unauthenticated: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Counts a connection just accepted from `ip`, or says why it must be closed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.get(&ip).copied().unwrap_or(0);
        let refusal = if self.per_ip > 0 && n >= self.per_ip {
            Some(Refused::PerIp)
        } else if self.max_unauthenticated > 0 && self.unauthenticated.load(Relaxed) >= self.max_unauthenticated {
            Some(Refused::Unauthenticated)
        } else {
            None
        };
        if let Some(why) = refusal {
            self.refused.fetch_add(1, Relaxed);
            return Err(why);
        }
        open.insert(ip, n + 1);
        // Under the lock, so that two accepts cannot both pass the cap's check.
        self.unauthenticated.fetch_add(1, Relaxed);
        Ok(Admitted { admission: self.clone(), ip, authenticated: AtomicBool::new(false) })
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).get(&ip).copied().unwrap_or(0)
    }

    /// Connections that are not an authenticated WebSocket.
    pub fn unauthenticated(&self) -> usize {
        self.unauthenticated.load(Relaxed)
    }

    /// Connections refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }
}

/// One admitted connection; its counts are released when it drops.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
    authenticated: AtomicBool,
}

impl Admitted {
    /// The connection is now an authenticated WebSocket: it no longer counts against the cap on
    /// unauthenticated connections (it still counts against its IP's).
    pub fn authenticated(&self) {
        if !self.authenticated.swap(true, Relaxed) {
            self.admission.unauthenticated.fetch_sub(1, Relaxed);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        if !self.authenticated.load(Relaxed) {
            self.admission.unauthenticated.fetch_sub(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_ip_and_unauthenticated_until_released() {
        let a = Admission::new(2, 3);
        let (x, y) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let x1 = a.admit(x).unwrap();
        let x2 = a.admit(x).unwrap();
        assert_eq!(a.admit(x).unwrap_err(), Refused::PerIp);
        let y1 = a.admit(y).unwrap();
        assert_eq!(a.unauthenticated(), 3);
        assert_eq!(a.admit("10.0.0.3".parse().unwrap()).unwrap_err(), Refused::Unauthenticated);
        // An authenticated socket frees a place under the cap, not under its IP's limit.
        x1.authenticated();
        x1.authenticated();
        assert_eq!(a.unauthenticated(), 2);
        assert_eq!(a.admit(x).unwrap_err(), Refused::PerIp);
        let z = a.admit("10.0.0.3".parse().unwrap()).unwrap();
        drop((x1, x2, y1, z));
        assert_eq!((a.unauthenticated(), a.open_from(x), a.open_from(y)), (0, 0, 0));
        assert_eq!(a.refused(), 3);
        // 0: no limits.
        let open = Admission::new(0, 0);
        let held: Vec<_> = (0..100).map(|_| open.admit(x).unwrap()).collect();
        assert_eq!(open.open_from(x), held.len());
    }
}
