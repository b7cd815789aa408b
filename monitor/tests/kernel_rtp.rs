//! Kernel tests of the call-quality path (BPF_PROG_TEST_RUN): crafted RTP packets with
//! known loss, reordering and duplicates go through the XDP and TC programs (and their
//! tail-called quality programs); the stream map holds exactly the RFC 3550 counts.

mod support;

use aya::maps::{HashMap, MapData};
use monitor_common::{
    FlowKey, map_names,
    rtp::{ClockSource, MediaKind, RtpStreamKey, RtpStreamState},
};
use support::{Kernel, TC_ACT_OK, XDP_PASS, key_v4, key_v6};
use xtask::{
    frames::{self, Ext, Ipv4, Ipv6, L4},
    rtp::RtpStream,
};

const LAN: [u8; 4] = [192, 0, 2, 10];
const WEBEX: [u8; 4] = [203, 0, 113, 10];
const UDP: u8 = 17;

fn rtp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, rtp: Vec<u8>) -> Vec<u8> {
    let ip = Ipv4::new(src.into(), dst.into());
    frames::v4(
        &ip,
        &L4::Udp {
            src: sport,
            dst: dport,
            payload: rtp,
        },
    )
}

/// Every stream as the daemon reads them: the stream map's entries and the streams
/// embedded in media flows (a flow's first SSRC).
fn streams(k: &Kernel) -> Vec<(RtpStreamKey, RtpStreamState)> {
    monitor::quality::take(&k.harness.ebpf)
        .expect("quality maps")
        .streams
}

/// The stream map's own entries (streams not embedded in their media flow).
fn map_streams(k: &Kernel) -> Vec<(RtpStreamKey, RtpStreamState)> {
    let map: HashMap<&MapData, RtpStreamKey, RtpStreamState> = HashMap::try_from(
        k.harness
            .ebpf
            .map(map_names::RTP_STREAMS)
            .expect("stream map"),
    )
    .expect("stream map type");
    map.iter().map(|e| e.expect("stream entry")).collect()
}

fn stream(k: &Kernel, flow: FlowKey, ssrc: u32) -> RtpStreamState {
    streams(k)
        .into_iter()
        .find(|(key, _)| key.flow == flow && key.ssrc == ssrc)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no stream {ssrc:#x} on {flow:?}"))
}

/// Sends `order` (indices into a run of consecutive packets) through `run`.
fn send(order: &[u16], ssrc: u32, mut run: impl FnMut(Vec<u8>)) {
    let mut s = RtpStream::pcmu(ssrc);
    let max = *order.iter().max().unwrap() as usize;
    let packets: Vec<Vec<u8>> = (0..=max).map(|_| s.next_packet(172)).collect();
    for &i in order {
        run(packets[i as usize].clone());
    }
}

#[test]
fn xdp_counts_loss_reordering_and_duplicates_exactly() {
    let mut k = Kernel::load();
    let ssrc = 0x0bad_cafe;
    // 0..=19 with 5 and 6 lost, 9/10 swapped, 12 twice, 15 again after 17.
    let order = [
        0, 1, 2, 3, 4, 7, 8, 10, 9, 11, 12, 12, 13, 14, 15, 16, 17, 15, 18, 19,
    ];
    send(&order, ssrc, |rtp| {
        assert_eq!(k.xdp(&rtp_frame(WEBEX, 5004, LAN, 40000, rtp)), XDP_PASS);
    });
    let s = stream(&k, key_v4(WEBEX, 5004, LAN, 40000, UDP, 0), ssrc);
    assert_eq!(s.packets, order.len() as u64);
    // Both probation packets count, as tshark counts: expected 0..=19 = 20.
    assert_eq!(s.expected(), 20);
    assert_eq!(s.received, 20);
    assert_eq!(s.duplicates, 2);
    assert_eq!(s.reordered, 1);
    assert_eq!(s.lost(), 2);
    assert_eq!(s.lost_rfc(), 0);
    // Gaps 4 -> 7 and 8 -> 10 in the in-order arrivals.
    assert_eq!(s.loss_bursts, 2);
    // Timestamps ahead of the previous packet's: all but the first packet, the late 9,
    // the duplicate 12 and the late 15.
    assert_eq!(s.frames, 16);
    assert_eq!(s.clock_rate, 8000);
    assert_eq!(s.clock_source, ClockSource::Static as u32);
    assert_eq!(s.payload_type, 0);
    let q = monitor::quality::take(&k.harness.ebpf).expect("quality maps");
    assert_eq!(
        q.counters.packets[MediaKind::Rtp as usize],
        order.len() as u64
    );
    assert_eq!(q.counters.streams_created, 1);
    assert_eq!(q.counters.stream_insert_failed, 0);
    // The flow's first SSRC lives in its media flow's value (no stream map entry).
    assert!(map_streams(&k).is_empty());
}

#[test]
fn a_stream_whose_flow_began_with_dtls_is_embedded_when_its_first_rtp_arrives() {
    let mut k = Kernel::load();
    let dtls = rtp_frame(WEBEX, 5004, LAN, 40004, vec![22; 40]);
    assert_eq!(k.xdp(&dtls), XDP_PASS);
    assert!(streams(&k).is_empty());
    // 0..=9 with 4 lost.
    let order = [0, 1, 2, 3, 5, 6, 7, 8, 9];
    send(&order, 0x5eed, |rtp| {
        assert_eq!(k.xdp(&rtp_frame(WEBEX, 5004, LAN, 40004, rtp)), XDP_PASS);
    });
    let s = stream(&k, key_v4(WEBEX, 5004, LAN, 40004, UDP, 0), 0x5eed);
    assert_eq!(
        (s.packets, s.expected(), s.received, s.lost()),
        (9, 10, 9, 1)
    );
    assert!(map_streams(&k).is_empty());
    let c = monitor::quality::take(&k.harness.ebpf)
        .expect("quality maps")
        .counters;
    assert_eq!(c.packets[MediaKind::Dtls as usize], 1);
    assert_eq!(c.packets[MediaKind::Rtp as usize], order.len() as u64);
    assert_eq!((c.streams_created, c.stream_insert_failed), (1, 0));
}

#[test]
fn tc_counts_a_wrapping_stream_and_ssrcs_apart() {
    let mut k = Kernel::load();
    let mut a = RtpStream::pcmu(1);
    a.seq = 65530;
    let mut b = RtpStream::pcmu(2);
    for i in 0..12 {
        if i == 8 {
            a.skip(1);
        }
        let f = rtp_frame(LAN, 40002, WEBEX, 5004, a.next_packet(172));
        assert_eq!(k.tc(&f, 0), TC_ACT_OK);
        let f = rtp_frame(LAN, 40002, WEBEX, 5004, b.next_packet(172));
        assert_eq!(k.tc(&f, 0), TC_ACT_OK);
    }
    let flow = key_v4(LAN, 40002, WEBEX, 5004, UDP, 1);
    let sa = stream(&k, flow, 1);
    assert_eq!(sa.packets, 12);
    assert_eq!(sa.cycles, 1 << 16);
    // 65530..=(65530 + 12) = 13 expected, 12 received.
    assert_eq!(sa.expected(), 13);
    assert_eq!(sa.received, 12);
    assert_eq!(sa.lost(), 1);
    let sb = stream(&k, flow, 2);
    assert_eq!((sb.packets, sb.received, sb.lost()), (12, 12, 0));
    // The first SSRC is embedded in the media flow, the second in the stream map.
    let in_map: Vec<u32> = map_streams(&k).iter().map(|(k, _)| k.ssrc).collect();
    assert_eq!(in_map, [2]);
    let c = monitor::quality::take(&k.harness.ebpf)
        .expect("quality maps")
        .counters;
    assert_eq!(c.packets[MediaKind::Rtp as usize], 24);
    assert_eq!(c.streams_created, 2);
}

/// IPv6: the stream embedded in the media flow on TC egress, exactly; a flow whose
/// packets carry an extension header before UDP is not measured, as before streams were
/// embedded (the quality stage leaves those out).
#[test]
fn ipv6_streams_are_embedded_and_extension_headers_are_left_out() {
    const LAN6: &str = "2001:db8:1::10";
    const WEBEX6: &str = "2001:db8:ff::10";
    let mut k = Kernel::load();
    let frame = |sport: u16, ext: Vec<Ext>, rtp: Vec<u8>| {
        let mut ip = Ipv6::new(LAN6.parse().unwrap(), WEBEX6.parse().unwrap());
        ip.ext = ext;
        frames::v6(
            &ip,
            &L4::Udp {
                src: sport,
                dst: 5004,
                payload: rtp,
            },
        )
    };
    // 0..=11 with 6 lost.
    let order = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11];
    send(&order, 0x0600_0001, |rtp| {
        assert_eq!(k.tc(&frame(40006, Vec::new(), rtp), 0), TC_ACT_OK);
    });
    send(&[0, 1, 2, 3], 0x0600_0002, |rtp| {
        assert_eq!(k.tc(&frame(40008, vec![Ext::DestOpts], rtp), 0), TC_ACT_OK);
    });
    let flow = key_v6(LAN6, 40006, WEBEX6, 5004, UDP, 1);
    let s = stream(&k, flow, 0x0600_0001);
    assert_eq!(
        (s.packets, s.expected(), s.received, s.lost()),
        (11, 12, 11, 1)
    );
    assert_eq!(
        streams(&k).len(),
        1,
        "no stream for the extension-header flow"
    );
    assert!(map_streams(&k).is_empty());
    let c = monitor::quality::take(&k.harness.ebpf)
        .expect("quality maps")
        .counters;
    assert_eq!(c.packets[MediaKind::Rtp as usize], order.len() as u64);
    assert_eq!((c.streams_created, c.stream_insert_failed), (1, 0));
    let ext_flow = key_v6(LAN6, 40008, WEBEX6, 5004, UDP, 1);
    assert_eq!(k.flow(&ext_flow).expect("the flow is counted").packets, 4);
}

#[test]
fn non_rtp_on_media_ports_makes_no_stream() {
    let mut k = Kernel::load();
    // DTLS (first byte 22) and a short 0x80 packet.
    let dtls = rtp_frame(LAN, 40003, WEBEX, 5004, vec![22; 40]);
    let short = rtp_frame(LAN, 40003, WEBEX, 5004, vec![0x80; 8]);
    assert_eq!(k.xdp(&dtls), XDP_PASS);
    assert_eq!(k.xdp(&short), XDP_PASS);
    assert!(streams(&k).is_empty());
    let c = monitor::quality::take(&k.harness.ebpf)
        .expect("quality maps")
        .counters;
    assert_eq!(c.packets[MediaKind::Dtls as usize], 1);
    assert_eq!(c.packets[MediaKind::Other as usize], 1);
    assert_eq!(c.rtp_truncated, 1);
    assert_eq!(c.packets[MediaKind::Rtp as usize], 0);
}
