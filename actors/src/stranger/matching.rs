//! Who is paired with whom, given the queue: pure, so it is tested without storage.
//!
//! The most shared interests first: of all the pairs the queue allows, those sharing most are
//! made first (among equals, the one whose older person waited longest). Two people are
//! paired only if they share at least what each requires: one interest for someone who entered
//! with interests, until they have waited `widen_after` if they accept fewer (`fewer`), then
//! none; nothing for someone who entered without interests. Pairs kept apart (`avoid`: just
//! talked, reported, blocked) are never made. Pairs sharing nothing are made only of people no
//! one waiting shares an interest with.

use crate::store::QueueEntry;
use confab_schemas::UserId;
use std::collections::{HashMap, HashSet};

/// Two entries of the queue (their indexes) to pair, and the interests they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub shared: Vec<String>,
}

/// How many shared interests `e` requires at `now`.
fn required(e: &QueueEntry, now: i64, widen_after_ms: i64) -> usize {
    if e.interests.is_empty() || (e.fewer && now - e.entered_at >= widen_after_ms) { 0 } else { 1 }
}

/// The pairs to make of `queue` (oldest first), leaving out `avoid` (both directions listed).
pub fn pairs(queue: &[QueueEntry], avoid: &HashSet<(UserId, UserId)>, now: i64, widen_after_ms: i64) -> Vec<Pair> {
    let mut by_interest: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in queue.iter().enumerate() {
        for t in &e.interests {
            by_interest.entry(t.as_str()).or_default().push(i);
        }
    }
    let need: Vec<usize> = queue.iter().map(|e| required(e, now, widen_after_ms)).collect();
    let mut taken = vec![false; queue.len()];
    let mut out = Vec::new();
    // First the pairs that share interests, those sharing most first (among equals, the pair
    // whose older person waited longest). Afterwards no two left waiting share one (unless kept
    // apart).
    let mut candidates: Vec<(usize, usize, usize)> = Vec::new();
    for (i, me) in queue.iter().enumerate() {
        let mut shared: HashMap<usize, usize> = HashMap::new();
        for t in &me.interests {
            for &j in by_interest[t.as_str()].iter().filter(|&&j| j > i) {
                *shared.entry(j).or_default() += 1;
            }
        }
        candidates.extend(
            shared
                .into_iter()
                .filter(|&(j, n)| n >= need[i].max(need[j]) && !apart(queue, i, j, avoid))
                .map(|(j, n)| (n, i, j)),
        );
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (_, i, j) in candidates {
        if taken[i] || taken[j] {
            continue;
        }
        taken[i] = true;
        taken[j] = true;
        let shared: Vec<String> =
            queue[i].interests.iter().filter(|t| queue[j].interests.contains(t)).cloned().collect();
        out.push(Pair { a: i, b: j, shared });
    }
    // Then those who require nothing (no interests, or waited long enough), oldest first.
    let mut open: Vec<usize> = (0..queue.len()).filter(|&i| !taken[i] && need[i] == 0).collect();
    while let Some(i) = (!open.is_empty()).then(|| open.remove(0)) {
        if let Some(k) = open.iter().position(|&j| !apart(queue, i, j, avoid)) {
            let j = open.remove(k);
            out.push(Pair { a: i, b: j, shared: Vec::new() });
        }
    }
    out
}

/// Whether the pool must not pair entries `i` and `j`.
fn apart(queue: &[QueueEntry], i: usize, j: usize, avoid: &HashSet<(UserId, UserId)>) -> bool {
    queue[i].user == queue[j].user || avoid.contains(&(queue[i].user, queue[j].user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(user: i64, interests: &[&str], fewer: bool, entered_at: i64) -> QueueEntry {
        QueueEntry {
            user: UserId(user),
            interests: interests.iter().map(|s| s.to_string()).collect(),
            fewer,
            entered_at,
            seen_at: entered_at,
            node: "n".into(),
            session: 1,
        }
    }

    #[test]
    fn pairs_by_most_shared_interests() {
        let q = vec![e(1, &["a", "b", "c"], false, 0), e(2, &["a"], false, 1), e(3, &["b", "c"], false, 2)];
        let p = pairs(&q, &HashSet::new(), 10, 10_000);
        assert_eq!(p, vec![Pair { a: 0, b: 2, shared: vec!["b".into(), "c".into()] }]);
    }

    #[test]
    fn widens_only_for_those_who_accept_fewer() {
        let q = vec![e(1, &["a"], true, 0), e(2, &["b"], true, 0), e(3, &["c"], false, 0)];
        assert!(pairs(&q, &HashSet::new(), 5_000, 10_000).is_empty());
        let p = pairs(&q, &HashSet::new(), 10_000, 10_000);
        assert_eq!(p, vec![Pair { a: 0, b: 1, shared: vec![] }]);
        // Without interests: anyone who requires nothing.
        let q = vec![e(1, &[], false, 0), e(2, &[], false, 0)];
        assert_eq!(pairs(&q, &HashSet::new(), 0, 10_000).len(), 1);
    }

    #[test]
    fn never_pairs_people_kept_apart() {
        let q = vec![e(1, &["a"], false, 0), e(2, &["a"], false, 1), e(3, &["a"], false, 2)];
        let avoid: HashSet<_> = [(UserId(1), UserId(2)), (UserId(2), UserId(1))].into();
        let p = pairs(&q, &avoid, 0, 10_000);
        assert_eq!(p, vec![Pair { a: 0, b: 2, shared: vec!["a".into()] }]);
    }
}
