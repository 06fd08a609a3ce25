//! A TCP proxy between a component and a broker node, for link faults:
//! traffic passed as is, throttled to a rate, or stalled (nothing read,
//! so that the sender's TCP window fills, as on a link that carries
//! nothing), each direction on its own.
//!
//! Written here rather than run from a tool (Toxiproxy, the .NET
//! client's choice): no Debian package carries one, and these three
//! behaviours on loopback take a page of tokio. Network faults that need
//! the kernel (packets dropped silently) go through `iptables` in a
//! network namespace instead (see [`crate::netns`]).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What one direction of the link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Bytes pass as they come.
    Open,
    /// Bytes pass at most this many a second.
    Throttled(u32),
    /// Nothing is read: the sender's buffers and window fill up.
    Stalled,
}

/// The two directions of every connection through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    /// From the component to the broker.
    pub upstream: Link,
    /// From the broker to the component.
    pub downstream: Link,
}

impl Links {
    /// Both directions the same.
    pub fn both(link: Link) -> Self {
        Links {
            upstream: link,
            downstream: link,
        }
    }
}

/// A proxy listening on a port of its own; dropped, it closes every
/// connection through it.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    links: watch::Sender<Links>,
    task: tokio::task::JoinHandle<()>,
}

/// The receive buffer of the proxy's sockets: small, so that a stalled or
/// throttled direction backs up into the sender quickly.
const BUFFER: u32 = 16 * 1024;

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to
    /// `127.0.0.1:target`.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| panic!("the proxy cannot listen: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no local address: {e}"))
            .port();
        let (links, watched) = watch::channel(Links::both(Link::Open));
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let watched = watched.clone();
                connections.spawn(async move {
                    if let Ok(broker) = connect(target).await {
                        relay(client, broker, watched).await;
                    }
                });
            }
        });
        Proxy { port, links, task }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the link does from now on, for every connection through it.
    pub fn set(&self, links: Links) {
        self.links.send_replace(links);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connect(port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(BUFFER)?;
    socket.set_send_buffer_size(BUFFER)?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// Copies both ways until either side closes.
async fn relay(client: TcpStream, broker: TcpStream, links: watch::Receiver<Links>) {
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (broker_read, broker_write) = broker.into_split();
    let up = pump(client_read, broker_write, links.clone(), |l| l.upstream);
    let down = pump(broker_read, client_write, links, |l| l.downstream);
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Copies one direction as `pick` of the links says.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut links: watch::Receiver<Links>,
    pick: fn(&Links) -> Link,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let link = pick(&links.borrow_and_update());
        let chunk = match link {
            Link::Stalled => {
                if links.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Link::Open => buffer.len(),
            // A quarter of a second's worth at a time.
            Link::Throttled(rate) => usize::try_from(rate / 4)
                .unwrap_or(1)
                .clamp(1, buffer.len()),
        };
        let read = tokio::select! {
            read = from.read(&mut buffer[..chunk]) => read,
            // A change of mode takes effect before the next read.
            changed = links.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        if let Link::Throttled(rate) = link {
            let pause = Duration::from_secs_f64(n as f64 / f64::from(rate.max(1)));
            tokio::time::sleep(pause).await;
        }
    }
}
