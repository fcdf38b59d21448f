//! Direct transfers of offered blobs, process to process over TCP.
//!
//! Through a NATS server, a blob is copied four times by the kernels (into
//! the server, out of it, twice) and once more by the server itself; on a
//! 2-core machine 10 MB took ~26 ms that way. A process that offers blobs
//! (see the `offer` module) therefore also listens on a TCP port, on the
//! address it uses to reach the NATS server (so a cluster on loopback stays
//! on loopback), and says so when asked over NATS; the fetcher connects and
//! reads the bytes straight from the offerer's memory (~4 ms for 10 MB here).
//! When that fails (a firewall, another network), the fetcher falls back to
//! the chunks over NATS: this is a shortcut, never the only way.
//!
//! The protocol, one fetch per connection: the fetcher sends the 32-byte
//! sha256; the offerer answers the size as a little-endian u64 (`u64::MAX`:
//! not offered) and then the bytes, and closes. Anyone who can reach the
//! port and knows a hash can read that blob, as anyone on the NATS server
//! can. This file knows nothing of NATS or of how offers are kept.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use grid_proto::BlobHash;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a server serves: the bytes offered under a hash, if any.
pub(crate) type Lookup = Arc<dyn Fn(&BlobHash) -> Option<Bytes> + Send + Sync>;

/// The answer's size for "not offered".
const NOT_OFFERED: u64 = u64::MAX;

/// A listening server; stops when dropped.
pub(crate) struct DirectServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DirectServer {
    /// Listens on `ip` (any free port) and serves what `lookup` finds.
    pub(crate) async fn start(ip: IpAddr, lookup: Lookup) -> io::Result<DirectServer> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let lookup = Arc::clone(&lookup);
                tokio::spawn(async move {
                    // A fetcher that goes away mid-answer is its own problem.
                    let _ = serve(stream, &lookup).await;
                });
            }
        });
        Ok(DirectServer { addr, task })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DirectServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, lookup: &Lookup) -> io::Result<()> {
    let mut hash = [0u8; 32];
    stream.read_exact(&mut hash).await?;
    let _ = stream.set_nodelay(true);
    match lookup(&BlobHash(hash)) {
        Some(bytes) => {
            stream
                .write_all(&(bytes.len() as u64).to_le_bytes())
                .await?;
            stream.write_all(&bytes).await?;
        }
        None => stream.write_all(&NOT_OFFERED.to_le_bytes()).await?,
    }
    stream.shutdown().await
}

/// Reads `hash` from the server at `addr`: `None` if it does not offer it.
/// Each step may take up to `stall`; the bytes are not hashed here.
pub(crate) async fn fetch(
    addr: SocketAddr,
    hash: &BlobHash,
    stall: Duration,
    preallocate_limit: usize,
) -> io::Result<Option<Vec<u8>>> {
    let mut stream = within(stall, TcpStream::connect(addr)).await?;
    let _ = stream.set_nodelay(true);
    within(stall, stream.write_all(&hash.0)).await?;
    let mut size = [0u8; 8];
    within(stall, stream.read_exact(&mut size)).await?;
    let size = u64::from_le_bytes(size);
    if size == NOT_OFFERED {
        return Ok(None);
    }
    let size = usize::try_from(size).map_err(|_| io::Error::other("blob too large"))?;
    let mut bytes = Vec::with_capacity(size.min(preallocate_limit));
    while bytes.len() < size {
        let want = (size - bytes.len()).min(8 << 20) as u64;
        let read = within(stall, (&mut stream).take(want).read_to_end(&mut bytes)).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(Some(bytes))
}

/// `work`, failing if it takes longer than `stall`.
async fn within<T>(
    stall: Duration,
    work: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(stall, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no progress"))?
}

/// The address this machine uses to reach `url`'s host (no packet is sent):
/// the one other machines on that network can reach, or loopback for a
/// server on loopback.
pub(crate) async fn local_ip_towards(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let first = rest.split(',').next()?;
    let host_port = first.rsplit_once('@').map_or(first, |(_, hp)| hp);
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:4222")
    };
    let server = tokio::net::lookup_host(host_port).await.ok()?.next()?;
    let unspecified: IpAddr = if server.is_ipv4() {
        [0, 0, 0, 0].into()
    } else {
        [0u16; 8].into()
    };
    let probe = std::net::UdpSocket::bind((unspecified, 0)).ok()?;
    probe.connect(server).ok()?;
    Some(probe.local_addr().ok()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blob_goes_straight_from_server_to_fetcher() {
        let blob = Bytes::from(vec![9u8; 3_000_000]);
        let hash = BlobHash::of(&blob);
        let offered = blob.clone();
        let lookup: Lookup = Arc::new(move |h| (*h == hash).then(|| offered.clone()));
        let server = DirectServer::start([127, 0, 0, 1].into(), lookup)
            .await
            .unwrap();
        let stall = Duration::from_secs(5);
        let back = fetch(server.addr(), &hash, stall, 1 << 20).await.unwrap();
        assert_eq!(back.as_deref(), Some(&blob[..]));
        let other = BlobHash::of(b"other");
        assert_eq!(
            fetch(server.addr(), &other, stall, 1 << 20).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_local_address_towards_a_loopback_server_is_loopback() {
        let ip = local_ip_towards("nats://127.0.0.1:4222").await;
        assert_eq!(ip, Some([127, 0, 0, 1].into()));
        let with_credentials = local_ip_towards("nats://user:pw@localhost:1").await;
        assert_eq!(with_credentials.map(|ip| ip.is_loopback()), Some(true));
    }
}
