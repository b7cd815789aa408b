//! Minimal RTP (RFC 3550) packet building, so generated media looks like a real G.711
//! call to the monitor's RTP demultiplexer and sequence/jitter accounting.

/// RTP version 2 in the top two bits of the first byte (0x80).
const VERSION_BITS: u8 = 2 << 6;
/// Fixed header length without CSRCs or extensions.
pub const HEADER_LEN: usize = 12;
/// PCMU (G.711 µ-law), static payload type 0, 8 kHz.
pub const PT_PCMU: u8 = 0;
/// G.711 at 20 ms packetisation: 160 samples, 160 payload bytes, 172-byte UDP payload.
pub const G711_SAMPLES_PER_20MS: u32 = 160;
/// µ-law silence.
const PCMU_SILENCE: u8 = 0xFF;

/// One RTP sender: its SSRC, payload type and running sequence number and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpStream {
    pub ssrc: u32,
    pub payload_type: u8,
    /// Sequence number of the next packet.
    pub seq: u16,
    /// RTP timestamp of the next packet.
    pub timestamp: u32,
    /// Timestamp increment per packet (samples per packet at the clock rate).
    pub samples_per_packet: u32,
    sent: u64,
}

impl RtpStream {
    /// A stream whose first sequence number and timestamp derive from the SSRC (RFC 3550
    /// wants them random; deterministic keeps tests reproducible).
    pub fn new(ssrc: u32, payload_type: u8, samples_per_packet: u32) -> RtpStream {
        RtpStream {
            ssrc,
            payload_type,
            seq: (ssrc >> 16) as u16 ^ ssrc as u16,
            timestamp: ssrc.rotate_left(13),
            samples_per_packet,
            sent: 0,
        }
    }

    /// G.711 µ-law at 20 ms per packet.
    pub fn pcmu(ssrc: u32) -> RtpStream {
        RtpStream::new(ssrc, PT_PCMU, G711_SAMPLES_PER_20MS)
    }

    /// The next packet, `udp_payload_len` bytes long in all (header included, at least
    /// [`HEADER_LEN`]), with the marker bit on the first packet (start of talkspurt).
    /// Advances the sequence number and timestamp.
    pub fn next_packet(&mut self, udp_payload_len: usize) -> Vec<u8> {
        let mut packet = vec![PCMU_SILENCE; udp_payload_len.max(HEADER_LEN)];
        packet[0] = VERSION_BITS;
        let marker = if self.sent == 0 { 0x80 } else { 0 };
        packet[1] = marker | (self.payload_type & 0x7f);
        packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
        packet[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        packet[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.samples_per_packet);
        self.sent += 1;
        packet
    }

    /// Skips `n` packets without sending them (ground-truth loss for tests).
    pub fn skip(&mut self, n: u16) {
        self.seq = self.seq.wrapping_add(n);
        self.timestamp = self
            .timestamp
            .wrapping_add(self.samples_per_packet.wrapping_mul(u32::from(n)));
    }
}

/// The fixed header fields of an RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Parses the fixed header; `None` unless the packet is at least 12 bytes of version 2.
pub fn parse_header(packet: &[u8]) -> Option<RtpHeader> {
    if packet.len() < HEADER_LEN || packet[0] >> 6 != 2 {
        return None;
    }
    Some(RtpHeader {
        marker: packet[1] & 0x80 != 0,
        payload_type: packet[1] & 0x7f,
        seq: u16::from_be_bytes([packet[2], packet[3]]),
        timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_packets() {
        let mut stream = RtpStream::pcmu(0x1234_5678);
        let (seq0, ts0) = (stream.seq, stream.timestamp);
        let first = stream.next_packet(172);
        let second = stream.next_packet(172);
        assert_eq!(first.len(), 172);
        assert_eq!(first[0], 0x80);
        assert_eq!(
            parse_header(&first),
            Some(RtpHeader {
                marker: true,
                payload_type: 0,
                seq: seq0,
                timestamp: ts0,
                ssrc: 0x1234_5678
            })
        );
        let h2 = parse_header(&second).unwrap();
        assert!(!h2.marker);
        assert_eq!(h2.seq, seq0.wrapping_add(1));
        assert_eq!(h2.timestamp, ts0.wrapping_add(160));
        assert!(first[12..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn sequence_wraps_and_skip_advances_timestamp() {
        let mut stream = RtpStream::pcmu(1);
        stream.seq = u16::MAX;
        stream.timestamp = u32::MAX - 100;
        let a = parse_header(&stream.next_packet(12)).unwrap();
        stream.skip(2);
        let b = parse_header(&stream.next_packet(12)).unwrap();
        assert_eq!((a.seq, b.seq), (u16::MAX, 2));
        assert_eq!(b.timestamp, (u32::MAX - 100).wrapping_add(3 * 160));
    }

    #[test]
    fn non_rtp_rejected() {
        assert_eq!(parse_header(&[0x80; 11]), None);
        assert_eq!(parse_header(&[0x00; 12]), None);
    }
}
