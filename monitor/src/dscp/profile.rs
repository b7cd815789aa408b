//! Audio or video from a media flow's measured profile, for media whose kind the kernel
//! cannot know (no dedicated source port ranges).
//!
//! Voice codecs send small packets at a steady rate (G.711 at 20 ms: 200 IP bytes;
//! Opus: 80-200), while video frames are cut into packets close to the path MTU. The
//! mean IP packet size over the flow separates the two well; too few packets say
//! nothing.

use monitor_common::Class;

/// Packets a flow needs before its profile is trusted.
pub const MIN_PACKETS: u64 = 20;
/// Mean IP bytes per packet from which a media flow is video.
pub const VIDEO_MEAN_BYTES: u64 = 400;

/// Audio or video from a flow's packet and IP byte counts; `None` while unknown.
pub fn kind(packets: u64, bytes: u64) -> Option<Class> {
    if packets < MIN_PACKETS {
        return None;
    }
    Some(if bytes / packets >= VIDEO_MEAN_BYTES {
        Class::Video
    } else {
        Class::Audio
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_steady_packets_are_audio_and_large_ones_video() {
        assert_eq!(kind(50, 50 * 200), Some(Class::Audio));
        assert_eq!(kind(50, 50 * 399), Some(Class::Audio));
        assert_eq!(kind(50, 50 * 400), Some(Class::Video));
        assert_eq!(kind(300, 300 * 1200), Some(Class::Video));
        assert_eq!(kind(19, 19 * 1200), None);
        assert_eq!(kind(0, 0), None);
    }
}
