//! Concurrent scrapes, the connection cap and header limits.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Exporter, get, value};

#[test]
fn sixty_four_concurrent_scrapers() {
    let exporter = Exporter::start("h100x8.json", &["-c", "100", "--processes"]);
    let addr = exporter.addr;
    let started = Instant::now();
    let workers: Vec<_> = (0..64)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let gzip = i % 2 == 0;
                    let headers: &[(&str, &str)] = if gzip {
                        &[("Accept-Encoding", "gzip")]
                    } else {
                        &[]
                    };
                    let r = get(addr, "/metrics", headers);
                    assert_eq!(r.status, 200);
                    if gzip {
                        let mut text = String::new();
                        flate2::read::GzDecoder::new(&r.body[..])
                            .read_to_string(&mut text)
                            .expect("gzip");
                        assert!(text.contains("algalon_gpu_up{gpu=\"7\""));
                    } else {
                        assert!(value(&r.text(), "algalon_gpu_up", &["gpu=\"7\""]) == Some(1.0));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("scraper thread");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "640 scrapes took {:?}",
        started.elapsed()
    );
    assert_eq!(exporter.get("/health").status, 200);
}

#[test]
fn idle_connections_at_the_cap_make_room_for_a_new_one() {
    let exporter = Exporter::start("steps.json", &["-c", "1000", "--max-connections", "4"]);
    // Four idle connections take every slot.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(exporter.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let r = get(exporter.addr, "/metrics", &[]);
    assert_eq!(
        r.status,
        200,
        "the oldest idle connection gave way: {}",
        r.text()
    );
    // The first one opened was closed by the server.
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 1];
    assert!(
        matches!(idle[0].read(&mut buf), Ok(0) | Err(_)),
        "the longest-idle connection is closed"
    );
}

#[test]
fn oversized_request_heads_are_rejected() {
    let exporter = Exporter::start("steps.json", &["-c", "1000"]);
    let mut tcp = TcpStream::connect(exporter.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let big = "x".repeat(32 * 1024);
    let req =
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    // The server may close before reading everything.
    let _ = tcp.write_all(req.as_bytes());
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "a 32 KiB header is refused: {}",
        text.lines().next().unwrap_or("")
    );
    assert!(!text.contains("DCGM_"));
    // Many headers too.
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut tcp = TcpStream::connect(exporter.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = tcp.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n").as_bytes(),
    );
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.starts_with("HTTP/1.1 200"), "200 headers are refused");
    // The server is still fine.
    assert_eq!(exporter.get("/health").status, 200);
}
