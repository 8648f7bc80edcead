//! Network partitions between sandbox nodes: iptables rules that drop every packet, both ways,
//! between the loopback addresses of two groups of nodes (gossip, node-to-node links, dials in
//! either direction), removed when the handle drops. Needs root and iptables (`.ci/run`
//! installs it).

use crate::cluster::Sandbox;
use std::process::Command;
use std::time::Duration;

pub struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    /// Cuts node `i` off from every other node of the sandbox.
    pub async fn isolate(sb: &Sandbox, i: usize) -> Partition {
        let others: Vec<usize> = (0..sb.nodes.len()).filter(|j| *j != i).collect();
        Partition::between(sb, &[i], &others).await
    }

    /// Cuts every node of `a` off from every node of `b`, and checks the cut holds.
    pub async fn between(sb: &Sandbox, a: &[usize], b: &[usize]) -> Partition {
        let mut rules = Vec::new();
        for &x in a {
            for &y in b {
                for (src, dst) in [(sb.node_ip(x), sb.node_ip(y)), (sb.node_ip(y), sb.node_ip(x))] {
                    rules.push(["INPUT", "-s", &src, "-d", &dst, "-j", "DROP"].iter().map(|s| s.to_string()).collect());
                }
            }
        }
        for r in &rules {
            let ok = Command::new("iptables").arg("-I").args(r).status();
            assert!(
                ok.is_ok_and(|s| s.success()),
                "iptables is needed to partition nodes (apt-get install iptables; .ci/run does it; runs as root)"
            );
        }
        let p = Partition { rules };
        // The probe: a dial from b's address to a's node-to-node port gets no answer.
        if let (Some(&x), Some(&y)) = (a.first(), b.first()) {
            let through = probe_from(&sb.node_ip(y), &sb.node_ip(x), sb.cluster_ports[x]).await;
            assert!(!through, "the partition did not cut n{y} off from n{x}");
        }
        p
    }

    /// Removes the rules now (dropping does the same).
    pub fn heal(self) {}
}

/// Whether a TCP connection from `from` to `to:port` succeeds within 300 ms.
async fn probe_from(from: &str, to: &str, port: u16) -> bool {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{from}:0").parse().expect("addr")).expect("bind");
    let addr = format!("{to}:{port}").parse().expect("addr");
    matches!(tokio::time::timeout(Duration::from_millis(300), socket.connect(addr)).await, Ok(Ok(_)))
}

impl Drop for Partition {
    fn drop(&mut self) {
        for r in &self.rules {
            let _ = Command::new("iptables").arg("-D").args(r).status();
        }
    }
}
