//! Learning Webex peers by name, end to end on the namespace testbed: a real resolver
//! (dnsmasq) in the WAN namespace answers a query the LAN host sends through the NAT,
//! and a real TLS client (`openssl s_client`) talks to a real server (`openssl
//! s_server`). The addresses used are outside the configured Webex prefixes, so only
//! learning can make them Webex.

mod learn_bed;

use std::time::{Duration, Instant};

use learn_bed::*;
use xtask::testbed::WAN_HOST_V4;

#[test]
fn dns_answers_make_an_address_webex_until_their_ttl() {
    let bed = Bed::new(|tb, dir| vec![dnsmasq(tb, dir)]);
    // Wait for dnsmasq to listen: the first answers proves it (and is outside the
    // domains, so it teaches nothing).
    wait_for_dnsmasq(&bed.tb);

    // Before any answer for a Webex name: not tracked.
    send_media(&bed, 10);
    std::thread::sleep(Duration::from_millis(1500));
    let s = bed.status();
    assert!(flows_to(&s, LEARNED_V4).is_empty(), "{}", s["flows"]);
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);

    // The answer (CNAME chain) teaches the address.
    assert!(resolve(&bed.tb, "media.webex.com") > 0);
    let s = bed.wait_until(10, "the learned peer", |s| !peers(s).is_empty());
    let p = &peers(&s)[0];
    assert_eq!(p["addr"], LEARNED_V4.to_string());
    assert_eq!(p["name"], "media.webex.com");
    assert_eq!(p["source"], "dns");
    assert!(p["expires_in_s"].as_u64().unwrap() <= DNS_TTL_S);
    assert_eq!(peers(&s).len(), 1);
    // Seen on WAN ingress and LAN egress: counted once.
    assert!(
        s["learn"]["duplicates"].as_u64().unwrap() >= 1,
        "{}",
        s["learn"]
    );

    // Now traffic to it is Webex: the LAN-ingress and WAN-egress flows, 10 packets each.
    send_media(&bed, 10);
    let s = bed.wait_until(5, "learned flows", |s| flows_to(s, LEARNED_V4).len() == 2);
    for f in flows_to(&s, LEARNED_V4) {
        assert_eq!(f["packets"], 10);
        assert_ne!(f["class"], "not_webex");
    }
    let created = s["counters"]["flows_created"].as_u64().unwrap();

    // After the TTL: forgotten, and its flows deleted (not counted as evicted).
    let s = bed.wait_until(DNS_TTL_S + 5, "expiry", |s| {
        peers(s).is_empty() && flows_to(s, LEARNED_V4).is_empty()
    });
    assert_eq!(s["learn"]["flows_deleted"], 2, "{}", s["learn"]);
    assert_eq!(s["learn"]["expired"], 1);
    assert_eq!(s["counters"]["flows_evicted"], 0);
    // New traffic is not tracked any more.
    send_media(&bed, 10);
    std::thread::sleep(Duration::from_millis(1500));
    let s = bed.status();
    assert!(flows_to(&s, LEARNED_V4).is_empty(), "{}", s["flows"]);
    assert_eq!(s["counters"]["flows_created"].as_u64().unwrap(), created);
    let _ = &bed.dir;
}

#[test]
fn a_tls_server_name_teaches_the_server_address() {
    let bed = Bed::new(|tb, dir| vec![openssl_server(tb, dir)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    // A name outside the domains teaches nothing (and proves the server is up).
    while !s_client(&bed.tb, "www.example.org") {
        assert!(Instant::now() < deadline, "s_server did not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let s = bed.status();
    assert!(peers(&s).is_empty(), "{}", s["learned_peers"]);
    assert!(flows_to(&s, WAN_HOST_V4).is_empty());

    // The first Webex handshake teaches. (Its connection's last packets may already be
    // tracked: classification happens whenever an untracked packet passes.)
    assert!(s_client(&bed.tb, "media.webex.com"));
    let s = bed.wait_until(10, "the learned peer", |s| !peers(s).is_empty());
    let p = &peers(&s)[0];
    assert_eq!(p["addr"], WAN_HOST_V4.to_string());
    assert_eq!(p["name"], "media.webex.com");
    assert_eq!(p["source"], "sni");

    // The next connection is Webex HTTPS control. (The report is the last poll's: the
    // flows and the learning counters of one instant.)
    assert!(s_client(&bed.tb, "media.webex.com"));
    let s = bed.wait_until(5, "the HTTPS flows and the third ClientHello", |s| {
        !flows_to(s, WAN_HOST_V4).is_empty()
            && s["learn"]["client_hellos"].as_u64().unwrap_or(0) >= 3
    });
    for f in flows_to(&s, WAN_HOST_V4) {
        assert_eq!(f["class"], "https_control", "{f}");
        assert_eq!(f["peer_port"], 443);
    }
    assert!(
        s["learn"]["client_hellos"].as_u64().unwrap() >= 3,
        "{}",
        s["learn"]
    );
}

#[test]
fn a_call_started_before_its_peer_was_learned_moves_to_the_media_table_with_its_counts() {
    // Every flow tracked: the call's flows exist as not_webex before learning.
    let bed = Bed::with_daemon("track_all_flows = true\n", "idle_s = 30\n", |tb, dir| {
        vec![dnsmasq(tb, dir)]
    });
    wait_for_dnsmasq(&bed.tb);
    let call = |s: &serde_json::Value| -> Vec<(String, u64)> {
        s["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["dst_addr"] == LEARNED_V4.to_string() && f["dst_port"] == MEDIA_PORT)
            .map(|f| {
                (
                    f["class"].as_str().unwrap().to_string(),
                    f["packets"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let media_entries = |s: &serde_json::Value| {
        s["maps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "MEDIA_FLOWS")
            .map(|m| m["entries"].as_u64().unwrap())
    };
    let not_webex = |n: u64| vec![("not_webex".to_string(), n); 2];
    let media = |n: u64| vec![("media".to_string(), n); 2];

    // LAN ingress and WAN egress, 12 packets each, in the main table.
    send_media(&bed, 12);
    let s = bed.wait_until(10, "the call as not_webex", |s| call(s) == not_webex(12));
    assert_eq!(media_entries(&s), Some(0), "{}", s["maps"]);

    // Learned: both flows move to the media table with their 12 packets each.
    assert!(resolve(&bed.tb, "media.webex.com") > 0);
    let s = bed.wait_until(10, "the call moved", |s| {
        call(s) == media(12) && media_entries(s) == Some(2)
    });
    assert_eq!(s["learn"]["flows_reclassified"], 2, "{}", s["learn"]);

    // Its next packets count on the moved entries: one flow each, no second one.
    send_media(&bed, 30);
    let s = bed.wait_until(10, "the call's later packets", |s| call(s) == media(42));
    assert_eq!(media_entries(&s), Some(2), "{}", s["maps"]);
    let _ = &bed.dir;
}
