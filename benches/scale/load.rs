//! The scale bench's load generator and request timers: one way of driving a URL, used
//! identically against Airlock and against nginx serving a file of the same size.

use bytes::Bytes;
use reqwest::{Client, Method};
use std::time::{Duration, Instant};

/// Connections (and concurrent requests) of a load.
pub const CONNECTIONS: usize = 32;
/// No load task sends more than this many requests, whatever the duration.
const MAX_REQUESTS_PER_TASK: usize = 2_000_000;

#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Bytes>,
}

impl Req {
    pub fn get(url: String) -> Req {
        Req {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn head(url: String) -> Req {
        Req {
            method: Method::HEAD,
            ..Req::get(url)
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Req {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn form(mut self, body: &str) -> Req {
        self.method = Method::POST;
        self.headers
            .push(("content-type", "application/x-www-form-urlencoded".into()));
        self.body = Some(Bytes::from(body.to_string()));
        self
    }

    fn build(&self, client: &Client) -> reqwest::RequestBuilder {
        let mut r = client.request(self.method.clone(), &self.url);
        for (k, v) in &self.headers {
            r = r.header(*k, v);
        }
        if let Some(b) = &self.body {
            r = r.body(b.clone());
        }
        r
    }
}

pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONNECTIONS)
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

/// One request: status, time to the response head, time to the last body byte, body.
pub struct Timed {
    pub status: u16,
    pub ttfb: Duration,
    pub total: Duration,
    pub body: Bytes,
    /// The announced length (what a HEAD answer says of the body it leaves out).
    pub content_length: Option<u64>,
}

pub async fn once(client: &Client, req: &Req) -> Result<Timed, String> {
    let started = Instant::now();
    let response = req
        .build(client)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", req.url))?;
    let ttfb = started.elapsed();
    let status = response.status().as_u16();
    let content_length = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("{}: body: {e}", req.url))?;
    Ok(Timed {
        status,
        ttfb,
        total: started.elapsed(),
        body,
        content_length,
    })
}

/// [`once`], refusing anything but a 2xx answer.
pub async fn ok(client: &Client, req: &Req) -> Result<Timed, String> {
    let t = once(client, req).await?;
    if !(200..300).contains(&t.status) {
        let text = String::from_utf8_lossy(&t.body[..t.body.len().min(300)]).to_string();
        return Err(format!("{} {}: {} {text}", req.method, req.url, t.status));
    }
    Ok(t)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: usize,
}

/// `CONNECTIONS` keep-alive connections sending `req` back to back for `duration`;
/// every answer must be 2xx with its whole body read.
pub async fn load(client: &Client, req: &Req, duration: Duration) -> Result<Load, String> {
    // Warm the pool (and the server's caches) before the clock starts.
    ok(client, req).await?;
    let started = Instant::now();
    let until = started + duration;
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, req) = (client.clone(), req.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until && latencies.len() < MAX_REQUESTS_PER_TASK {
                    let t = Instant::now();
                    let r = req.build(&client).send().await.map_err(|e| e.to_string())?;
                    let status = r.status();
                    r.bytes().await.map_err(|e| e.to_string())?;
                    if !status.is_success() {
                        return Err(format!("{} {}: {status}", req.method, req.url));
                    }
                    latencies.push(t.elapsed());
                }
                Ok::<_, String>(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if all.is_empty() {
        return Err(format!("{}: no request completed", req.url));
    }
    all.sort();
    let at = |q: usize| all[(all.len() * q / 100).min(all.len() - 1)].as_secs_f64() * 1000.0;
    Ok(Load {
        rps: all.len() as f64 / elapsed,
        p50_ms: at(50),
        p99_ms: at(99),
        requests: all.len(),
    })
}
