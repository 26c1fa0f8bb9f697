//! The Persoon's pages, in a real browser: Debian's headless Chromium, driven over WebDriver
//! (chromedriver, fantoccini), each page loaded through the real proxy in Dutch and in English.
//! For every page: no console errors and no CSP violations, `<html lang>` right, one `h1`, the
//! helpdesk code visible, no link leaving the page but Vert 4's link back (which the browser
//! follows to the client's redirect_uri with `error=access_denied` and the original state), text
//! contrast at least 4.5:1 computed from the rendered colours (WCAG 2.1 AA), and no horizontal
//! scrolling at 360 px. The Dutch pages' screenshots, 360 and 1280 px wide, go to `docs/pages/`
//! when `VERT_SCREENSHOTS` is set (or a page has none yet).
//!
//! Chromium may not reach anything but 127.0.0.1: every other host name resolves to nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use chrono::Datelike;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use http::Method;
use medmij_vert_proxy::vert::{Birthdate, Flow, Kind, Requested};
use serde_json::{Value, json};

const STATE: &str = "st%2B1";
const SELF: &str = "&scope=48";
const ONBEHALFOF: &str = "&scope=48%20onbehalfof&MedMij_geboortedatum=19700901";
const CORRELATION: &str = "&X-Correlation-ID=3f2b9d1c-5e8a-4c7b-9d2e-1a6f4b8c0d7e";

/// `chromedriver` on a free port of 127.0.0.1, stopped on drop.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    /// On a port the system chose: should another process take it before chromedriver binds
    /// (chromedriver then exits), another is chosen. Ready when `/status` answers as
    /// chromedriver does, so a test never talks to whatever else holds the port.
    fn start() -> Chromedriver {
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian package chromium-driver; ./test.sh installs it)");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // its port was taken
                }
                let status = std::net::TcpStream::connect(addr).ok().map(|_| {
                    raw(
                        addr,
                        b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                        Duration::from_secs(5),
                    )
                });
                if status.is_some_and(|r| r.contains("\"ready\":true")) {
                    return Chromedriver {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chromedriver never started");
    }

    async fn session(&self, lang: &str) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", format!("--lang={lang}"),
                    // Nothing but this machine: no DNS, no background traffic.
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-domain-reliability",
                    "--disable-features=Translate,OptimizationHints,MediaRouter",
                ],
                "prefs": { "intl.accept_languages": lang },
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chromedriver command outside the W3C set: its browser log, or a DevTools command.
#[derive(Debug)]
struct Vendor {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for Vendor {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or(""), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(self.body.to_string()))
    }
}

/// Console messages at error level since the last call (CSP violations are among them), less
/// Chromium's note that the document itself came with an error status, which is the point of
/// these pages.
async fn console_errors(client: &Client, document: &str) -> Vec<String> {
    let status_note =
        format!("{document} - Failed to load resource: the server responded with a status of");
    let log = client
        .issue_cmd(Vendor {
            path: "se/log",
            body: json!({ "type": "browser" }),
        })
        .await
        .unwrap();
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter_map(|entry| entry["message"].as_str())
        .filter(|message| !message.starts_with(&status_note))
        .map(str::to_owned)
        .collect()
}

async fn viewport(client: &Client, width: u32) {
    client
        .issue_cmd(Vendor {
            path: "goog/cdp/execute",
            body: json!({
                "cmd": "Emulation.setDeviceMetricsOverride",
                "params": { "width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600 },
            }),
        })
        .await
        .unwrap();
}

/// What the page shows, measured in the page from what was rendered.
const INSPECT: &str = r#"
const parse = c => { const m = c.match(/[\d.]+/g).map(Number); return { r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1 }; };
const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
const background = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c.a > 0) return c; } return { r: 255, g: 255, b: 255, a: 1 }; };
let minContrast = 99, worst = '';
for (const el of document.body.querySelectorAll('*')) {
  const text = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join('');
  if (!text) continue;
  const fg = lum(parse(getComputedStyle(el).color)), bg = lum(background(el));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  if (ratio < minContrast) { minContrast = ratio; worst = el.tagName + ': ' + text.slice(0, 40); }
}
const code = document.querySelector('.trace code');
const box = code ? code.getBoundingClientRect() : null;
return {
  lang: document.documentElement.lang,
  h1: document.querySelectorAll('h1').length,
  title: document.querySelector('h1') ? document.querySelector('h1').textContent : '',
  links: [...document.querySelectorAll('a')].map(a => a.href),
  scripts: document.querySelectorAll('script').length,
  trace: code ? code.textContent : '',
  traceVisible: !!box && box.width > 0 && box.height > 0 && getComputedStyle(code).visibility !== 'hidden',
  minContrast, worst,
  overflow: document.documentElement.scrollWidth > window.innerWidth,
  docTitle: document.title,
  brand: document.querySelector('.brand span') ? document.querySelector('.brand span').textContent : '',
  logo: document.querySelector('.brand img') ? (document.querySelector('.brand img').complete && document.querySelector('.brand img').naturalWidth > 0) : null,
  contact: document.querySelector('.contact') ? document.querySelector('.contact').textContent : '',
  resources: performance.getEntriesByType('resource').map(e => e.name),
};
"#;

/// A page the proxy can show, and how the browser gets there.
struct Page {
    name: &'static str,
    /// Loaded with GET, unless `post`.
    url: String,
    post: bool,
    /// Vert 4 only: the link back carries `error=access_denied` and the original state.
    link_back: bool,
}

/// The DVA's own name on the pages of the branded run (`[pages]`).
const ORGANISATION: &str = "Ziekenhuis Oost";
const PHONE: &str = "020 123 45 67";
const CONTACT_URL: &str = "https://oost.example.nl/contact";

fn branded_config(dir: &Path) -> String {
    std::fs::write(
        dir.join("logo.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40"><rect width="120" height="40" rx="6" fill="#7a1f5c"/><text x="60" y="26" font-family="sans-serif" font-size="16" fill="#fff" text-anchor="middle">OOST</text></svg>"##,
    )
    .unwrap();
    format!(
        "[pages]\norganisation = \"{ORGANISATION}\"\ncontact_phone = \"{PHONE}\"\ncontact_url = \"{CONTACT_URL}\"\nlogo_file = \"{}/logo.svg\"\naccent_color = \"#7a1f5c\"\n",
        dir.display()
    )
}

/// Loads `page` and checks every assertion; the title. `branded`: the page must show the DVA's
/// name, logo and helpdesk; screenshots are named with `prefix`.
async fn check(
    client: &Client,
    page: &Page,
    lang: &str,
    shots: Option<&Path>,
    branded: bool,
    prefix: &str,
) -> String {
    console_errors(client, "").await; // the log since the last page
    viewport(client, 1280).await;
    if page.post {
        // A form the browser submits: the only way a person's browser POSTs to the endpoint.
        let form = format!(
            "data:text/html,<form method=post action='{}'><button id=go>go</button></form>",
            // A data: URL is percent-decoded once: the action keeps its own escapes.
            page.url.replace('%', "%25")
        );
        client.goto(&form).await.unwrap();
        client
            .find(Locator::Id("go"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    } else {
        client.goto(&page.url).await.unwrap();
    }
    client.wait().for_element(Locator::Css("h1")).await.unwrap();
    let name = page.name;
    let shown = client.execute(INSPECT, vec![]).await.unwrap();
    assert_eq!(shown["lang"], lang, "{name}: {shown}");
    assert_eq!(shown["h1"], 1, "{name}: exactly one h1");
    assert_eq!(shown["scripts"], 0, "{name}: no JavaScript");
    let trace = shown["trace"].as_str().unwrap();
    assert!(
        uuid::Uuid::try_parse(trace).is_ok(),
        "{name}: helpdesk code {trace:?}"
    );
    assert_eq!(shown["traceVisible"], true, "{name}: helpdesk code visible");
    let contrast = shown["minContrast"].as_f64().unwrap();
    assert!(
        contrast >= 4.5,
        "{name}: contrast {contrast:.2} for {}",
        shown["worst"]
    );
    let mut links: Vec<&str> = shown["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    // Nothing is loaded from anywhere: a logo is embedded.
    let resources = shown["resources"].as_array().unwrap();
    assert!(
        resources
            .iter()
            .all(|r| r.as_str().unwrap().starts_with("data:")),
        "{name}: a request left the page: {resources:?}"
    );
    if branded {
        assert_eq!(shown["brand"], ORGANISATION, "{name}: {shown}");
        assert_eq!(shown["logo"], true, "{name}: logo shown");
        assert!(
            shown["docTitle"]
                .as_str()
                .unwrap()
                .ends_with(&format!(" · {ORGANISATION}")),
            "{name}: {shown}"
        );
        let contact = shown["contact"].as_str().unwrap();
        assert!(
            contact.contains(PHONE),
            "{name}: helpdesk phone: {contact:?}"
        );
        // The helpdesk's own links are the only others on the page.
        let helpdesk = format!("tel:{}", PHONE.replace(' ', ""));
        assert!(links.contains(&helpdesk.as_str()), "{name}: {links:?}");
        assert!(links.contains(&CONTACT_URL), "{name}: {links:?}");
        links.retain(|l| *l != helpdesk && *l != CONTACT_URL);
    } else {
        assert_eq!(shown["brand"], "", "{name}: unbranded");
    }
    if page.link_back {
        assert_eq!(links.len(), 1, "{name}: one link back: {links:?}");
        assert!(
            links[0].starts_with(&format!("{REDIRECT}?error=access_denied&"))
                && links[0].ends_with(&format!("&state={STATE}")),
            "{name}: {links:?}"
        );
    } else {
        assert!(
            links.is_empty(),
            "{name}: no link leaves the page: {links:?}"
        );
    }
    let document = client.current_url().await.unwrap();
    let errors = console_errors(client, document.as_str()).await;
    assert!(errors.is_empty(), "{name}: console errors: {errors:?}");
    let title = shown["title"].as_str().unwrap().to_owned();
    if let Some(dir) = shots {
        std::fs::write(
            dir.join(format!("{prefix}{name}-1280.png")),
            client.screenshot().await.unwrap(),
        )
        .unwrap();
    }

    // A phone: 360 px, no horizontal scrolling.
    viewport(client, 360).await;
    let narrow = client.execute(INSPECT, vec![]).await.unwrap();
    assert_eq!(
        narrow["overflow"], false,
        "{name}: scrolls sideways at 360 px"
    );
    if let Some(dir) = shots {
        std::fs::write(
            dir.join(format!("{prefix}{name}-360.png")),
            client.screenshot().await.unwrap(),
        )
        .unwrap();
    }

    if page.link_back {
        // The browser follows the link to the client (which does not resolve here).
        let link = client.find(Locator::Css("a")).await.unwrap();
        let href = link.attr("href").await.unwrap().unwrap();
        link.click().await.unwrap();
        let went = client.current_url().await.unwrap();
        assert_eq!(went.as_str(), href, "{name}: followed the link back");
        assert_eq!(went.host_str(), Some("pgo.example.nl"));
    }
    title
}

#[derive(Clone, Copy, Debug)]
enum Shown {
    Vert1,
    Vert2,
    Vert4,
    Auth1a,
    Expired,
    FailClosed,
    AlreadyUsed,
    AgeOnRecord,
    Unreachable,
    TimedOut,
    UriTooLong,
    BadRequest,
    MethodNotAllowed,
}

const EVERY_PAGE: [Shown; 13] = [
    Shown::Vert1,
    Shown::Vert2,
    Shown::Vert4,
    Shown::Auth1a,
    Shown::Expired,
    Shown::FailClosed,
    Shown::AlreadyUsed,
    Shown::AgeOnRecord,
    Shown::Unreachable,
    Shown::TimedOut,
    Shown::UriTooLong,
    Shown::BadRequest,
    Shown::MethodNotAllowed,
];

/// The proxies the pages come from: one in front of a scripted AS, one in front of a broken one.
struct Setup {
    recorder: Upstream,
    flows: Harness,
    _fault: Upstream,
    faults: Harness,
}

impl Setup {
    /// `pages`: TOML for a `[pages]` section, or nothing.
    fn start(pages: &str) -> Setup {
        let recorder = Upstream::recorder();
        let flows = Harness::start_with_upstream(
            &recorder.url(),
            &format!("[representation]\nage_rules = true\n{pages}"),
        );
        let fault = Upstream::faults();
        let faults = Harness::start_with_upstream(
            &fault.url(),
            &format!("[upstream]\nresponse_timeout = \"300ms\"\n{pages}"),
        );
        Setup {
            recorder,
            flows,
            _fault: fault,
            faults,
        }
    }

    fn authorize(&self, extra: &str) -> String {
        format!(
            "{}/oauth2/authorize?response_type=code&client_id={PGO}&redirect_uri={REDIRECT_ENC}&state={STATE}{extra}{CORRELATION}",
            self.flows.base
        )
    }

    /// The AS answers the authorization request at once with a code and `signal`.
    fn code_with(&self, signal: &[(&str, &str)]) {
        self.recorder
            .answer_authorize(&format!("{REDIRECT}?code=C0DE&state={{state}}"), signal);
    }

    /// Prepares the upstream for `shown`; where the browser goes.
    fn prepare(&self, shown: Shown) -> Page {
        let page = |name: &'static str, url: String| Page {
            name,
            url,
            post: false,
            link_back: false,
        };
        let on_behalf = [
            ("x-vert-representation", "onbehalfof"),
            ("x-vert-birthdate", "19700901"),
        ];
        match shown {
            Shown::Vert1 => {
                self.code_with(&[("x-vert-representation", "none")]);
                page("vert1", self.authorize(ONBEHALFOF))
            }
            Shown::Vert2 => {
                self.code_with(&on_behalf);
                page("vert2", self.authorize(SELF))
            }
            Shown::Vert4 => {
                self.code_with(&[
                    ("x-vert-representation", "onbehalfof"),
                    ("x-vert-birthdate", "19800101"),
                ]);
                Page {
                    link_back: true,
                    ..page("vert4", self.authorize(ONBEHALFOF))
                }
            }
            Shown::FailClosed => {
                self.code_with(&[]);
                page("fail-closed", self.authorize(SELF))
            }
            Shown::Auth1a => page(
                "auth-1a",
                format!(
                    "{}/oauth2/authorize?response_type=code&client_id=unknown.example&redirect_uri=https%3A%2F%2Funknown.example%2Fcb&state=s{CORRELATION}",
                    self.flows.base
                ),
            ),
            Shown::Expired => {
                // A flow sealed two hours ago with the proxy's own key.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let flow = Flow {
                    state: STATE.into(),
                    redirect_uri: REDIRECT.into(),
                    requested: None,
                    issued_at: now - 7200,
                    correlation_id: uuid::Uuid::try_parse(&CORRELATION[18..]).unwrap(),
                    fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
                };
                let sealed = self.flows.keys.seal(&flow);
                self.recorder.answer_path(
                    "/oauth2/consent",
                    &format!("{REDIRECT}?code=C0DE&state={sealed}"),
                    &[("x-vert-representation", "none")],
                );
                page("expired", format!("{}/oauth2/consent", self.flows.base))
            }
            Shown::AlreadyUsed => {
                // A flow whose code was released; the AS issues a second one.
                self.recorder.answer_path("/nothing", "", &[]);
                let r = get_raw(
                    self.flows.proxy_addr(),
                    &self.authorize(SELF)[self.flows.base.len()..],
                );
                assert_eq!(raw_status(&r), 200, "{r}");
                let received = self.recorder.received();
                let query = received.rsplit("GET /oauth2/authorize?").next().unwrap();
                let sealed = query
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .split('&')
                    .find_map(|p| p.strip_prefix("state="))
                    .unwrap()
                    .to_owned();
                self.recorder.answer_path(
                    "/oauth2/consent",
                    &format!("{REDIRECT}?code=C0DE&state={sealed}"),
                    &[("x-vert-representation", "none")],
                );
                let r = get_raw(self.flows.proxy_addr(), "/oauth2/consent");
                assert_eq!(raw_status(&r), 302, "the first code is released: {r}");
                page(
                    "already-used",
                    format!("{}/oauth2/consent", self.flows.base),
                )
            }
            Shown::AgeOnRecord => {
                // A flow asked for a child of 11 that comes back on the child's 12th birthday
                // (Dutch date): sealed here as if it had started yesterday.
                let today = medmij_vert_proxy::vert::age::dutch_date(chrono::Utc::now());
                let twelve_years_ago = today.with_year(today.year() - 12).unwrap_or_else(|| {
                    today
                        .with_day(28)
                        .unwrap()
                        .with_year(today.year() - 12)
                        .unwrap()
                });
                let number = twelve_years_ago.format("%Y%m%d").to_string();
                let birthdate = Birthdate::parse_format(&number).unwrap();
                let flow = Flow {
                    state: STATE.into(),
                    redirect_uri: REDIRECT.into(),
                    requested: Some(Requested {
                        kind: Kind::OnBehalfOfChild,
                        birthdate,
                    }),
                    issued_at: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs(),
                    correlation_id: uuid::Uuid::try_parse(&CORRELATION[18..]).unwrap(),
                    fresh_login: medmij_vert_proxy::vert::FreshLogin::OFF,
                };
                let sealed = self.flows.keys.seal(&flow);
                self.recorder.answer_path(
                    "/oauth2/consent",
                    &format!("{REDIRECT}?code=C0DE&state={sealed}"),
                    &[
                        ("x-vert-representation", "onbehalfofchild"),
                        ("x-vert-birthdate", number.as_str()),
                    ],
                );
                Page {
                    link_back: true,
                    ..page(
                        "age-on-record",
                        format!("{}/oauth2/consent", self.flows.base),
                    )
                }
            }
            Shown::Unreachable => page("502", format!("{}/reset-before", self.faults.base)),
            Shown::TimedOut => page("504", format!("{}/never", self.faults.base)),
            Shown::UriTooLong => page(
                "414",
                format!("{}/search?q={}", self.flows.base, "a".repeat(9000)),
            ),
            Shown::BadRequest => page("400", format!("{}/oauth2/%zz", self.flows.base)),
            Shown::MethodNotAllowed => Page {
                post: true,
                ..page("405", self.authorize(SELF))
            },
        }
    }
}

fn get_raw(addr: SocketAddr, target: &str) -> String {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\r\n").as_bytes(),
        Duration::from_secs(30),
    )
}

#[tokio::test]
async fn every_page_in_a_real_browser() {
    let driver = Chromedriver::start();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pages");
    std::fs::create_dir_all(&shots).unwrap();
    let dir = temp_dir();
    // As shipped, then in a DVA's own name (issue 22): every page, both languages, both times.
    for (pages, prefix) in [(String::new(), ""), (branded_config(&dir), "branded-")] {
        let setup = Setup::start(&pages);
        let branded = !pages.is_empty();
        for lang in ["nl", "en"] {
            let client = driver.session(lang).await;
            for shown in EVERY_PAGE {
                let page = setup.prepare(shown);
                // Screenshots are documentation, written when asked for (or missing): a test
                // run leaves the tree as it was (the proxy-trouble pages show a random trace
                // id). Branded, the two docs/rules.md shows.
                let documented = !branded || matches!(page.name, "vert1" | "vert4");
                let write = std::env::var_os("VERT_SCREENSHOTS").is_some()
                    || !shots
                        .join(format!("{prefix}{}-360.png", page.name))
                        .exists();
                let dir = (lang == "nl" && write && documented).then_some(shots.as_path());
                let title = check(&client, &page, lang, dir, branded, prefix).await;
                println!("{prefix}{lang} {:<14} {title}", page.name);
            }
            client.close().await.unwrap();
        }
    }
}
