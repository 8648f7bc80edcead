//! Images after upload: decoded (within limits, against decompression bombs), turned upright by
//! their EXIF orientation, and re-encoded without any metadata (EXIF, GPS, XMP, comments: the
//! encoders write none), with their dimensions and a JPEG thumbnail. CPU-bound: the caller runs
//! it on the blocking pool, a few at a time.
//!
//! A GIF keeps its frames (re-encoding would lose its animation) but loses its metadata: its
//! blocks are copied without comments, plain-text blocks or application blocks other than the
//! animation's loop count (XMP and the like travel in those); only its first frame is decoded,
//! for the dimensions and the thumbnail.

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, Rgb, RgbImage};
use std::io::Cursor;

/// The longest side of a thumbnail.
pub(crate) const THUMB_SIDE: u32 = 320;
/// JPEG quality of re-encoded photos and of thumbnails.
const PHOTO_QUALITY: u8 = 90;
const THUMB_QUALITY: u8 = 80;

/// A processed image.
pub(crate) struct Processed {
    /// The bytes to store instead of the uploaded ones (`None`: keep them).
    pub(crate) bytes: Option<Vec<u8>>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) thumb: Vec<u8>,
}

/// Processes the image `data` of type `mime`, refusing one of more than `max_pixels` pixels.
pub(crate) fn process(data: &[u8], mime: &str, max_pixels: u64) -> Result<Processed, String> {
    let format = match mime {
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        other => return Err(format!("{other} is not an image type this node reads")),
    };
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(32_768);
    limits.max_image_height = Some(32_768);
    // The decoded pixels (at most 8 bytes each) and the decoder's own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| format!("not a readable image: {e}"))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(format!("the image has {w}×{h} pixels; at most {max_pixels} are accepted"));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| format!("not a readable image: {e}"))?;
    img.apply_orientation(orientation);
    let bytes = match format {
        ImageFormat::Gif => Some(strip_gif(data)?),
        ImageFormat::Jpeg => Some(jpeg(&img.to_rgb8(), PHOTO_QUALITY)?),
        ImageFormat::Png => Some(encode(&img, ImageFormat::Png)?),
        _ => Some(encode(&DynamicImage::ImageRgba8(img.to_rgba8()), ImageFormat::WebP)?),
    };
    let thumb = thumbnail(&img)?;
    Ok(Processed { bytes, width: img.width(), height: img.height(), thumb })
}

/// `gif` without its comment, plain-text and application extension blocks, but for the loop
/// count (`NETSCAPE2.0`, `ANIMEXTS1.0`); refuses what is not a well-formed GIF.
fn strip_gif(gif: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "not a well-formed GIF".to_owned();
    let take = |at: usize, n: usize| gif.get(at..at + n).ok_or_else(bad);
    // The header and logical screen descriptor, then the global colour table if any.
    let screen = take(0, 13)?;
    let table = |packed: u8| if packed & 0x80 != 0 { 3usize << ((packed & 7) + 1) } else { 0 };
    let mut at = 13 + table(screen[10]);
    let mut out = take(0, at)?.to_vec();
    // The end of the data sub-blocks starting at `from` (just past their zero terminator).
    let sub_blocks = |mut from: usize| -> Result<usize, String> {
        loop {
            let len = usize::from(*gif.get(from).ok_or_else(bad)?);
            from += 1 + len;
            if len == 0 {
                return Ok(from);
            }
        }
    };
    loop {
        match *gif.get(at).ok_or_else(bad)? {
            0x3B => {
                out.push(0x3B);
                return Ok(out);
            }
            0x2C => {
                let descriptor = take(at, 10)?;
                let data = at + 10 + table(descriptor[9]) + 1;
                let end = sub_blocks(data)?;
                out.extend_from_slice(take(at, end - at)?);
                at = end;
            }
            0x21 => {
                let label = *gif.get(at + 1).ok_or_else(bad)?;
                let end = sub_blocks(at + 2)?;
                let looping = label == 0xFF
                    && gif.get(at + 2) == Some(&11)
                    && matches!(gif.get(at + 3..at + 14), Some(b"NETSCAPE2.0" | b"ANIMEXTS1.0"));
                // Graphic control (frame timing, transparency) stays; so does the loop count.
                if label == 0xF9 || looping {
                    out.extend_from_slice(take(at, end - at)?);
                }
                at = end;
            }
            _ => return Err(bad()),
        }
    }
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, String> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).map_err(|e| format!("encoding: {e}"))?;
    Ok(out.into_inner())
}

fn jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(rgb.clone())
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, quality))
        .map_err(|e| format!("encoding: {e}"))?;
    Ok(out)
}

/// A JPEG of at most `THUMB_SIDE` a side (never enlarged), transparency on white.
fn thumbnail(img: &DynamicImage) -> Result<Vec<u8>, String> {
    let small = if img.width() > THUMB_SIDE || img.height() > THUMB_SIDE {
        img.thumbnail(THUMB_SIDE, THUMB_SIDE)
    } else {
        img.clone()
    };
    let rgba = small.to_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (x, y, p) in rgba.enumerate_pixels() {
        let a = u16::from(p[3]);
        let blend = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
        rgb.put_pixel(x, y, Rgb([blend(p[0]), blend(p[1]), blend(p[2])]));
    }
    jpeg(&rgb, THUMB_QUALITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb([200, 10, 10])));
        encode(&img, ImageFormat::Png).unwrap()
    }

    #[test]
    fn dimensions_thumbnail_and_limits() {
        let p = process(&png(640, 200), "image/png", 1_000_000).unwrap();
        assert_eq!((p.width, p.height), (640, 200));
        let t = image::load_from_memory(&p.thumb).unwrap();
        assert_eq!((t.width(), t.height()), (320, 100));
        assert!(process(&png(2000, 1000), "image/png", 1_000_000).is_err(), "too many pixels");
        assert!(process(b"\x89PNG\r\n\x1a\nnot really", "image/png", 1_000_000).is_err());
        let small = process(&png(10, 20), "image/png", 1_000_000).unwrap();
        let t = image::load_from_memory(&small.thumb).unwrap();
        assert_eq!((t.width(), t.height()), (10, 20), "never enlarged");
    }

    #[test]
    fn a_gif_keeps_its_frames_and_loses_its_metadata() {
        use image::codecs::gif::{GifEncoder, Repeat};
        use image::{Frame, RgbaImage};
        let mut gif = Vec::new();
        {
            let mut enc = GifEncoder::new(&mut gif);
            enc.set_repeat(Repeat::Infinite).unwrap();
            for shade in [10u8, 200] {
                let frame = RgbaImage::from_pixel(8, 6, image::Rgba([shade, 0, 0, 255]));
                enc.encode_frame(Frame::new(frame)).unwrap();
            }
        }
        // A comment and an XMP block with a location, put in before the first frame.
        let first = 13 + if gif[10] & 0x80 != 0 { 3usize << ((gif[10] & 7) + 1) } else { 0 };
        let mut with_meta = gif[..first].to_vec();
        with_meta.extend_from_slice(b"\x21\xFE\x11lat=48.85 lon=2.3\x00");
        with_meta.extend_from_slice(b"\x21\xFF\x0BXMP DataXMP\x0Cgps:48.8566N\x00");
        with_meta.extend_from_slice(&gif[first..]);
        let p = process(&with_meta, "image/gif", 1_000_000).unwrap();
        let kept = p.bytes.unwrap();
        assert!(!kept.windows(3).any(|w| w == b"lat") && !kept.windows(3).any(|w| w == b"XMP"), "metadata gone");
        assert!(kept.windows(11).any(|w| w == b"NETSCAPE2.0"), "the loop count stays");
        let frames = image::codecs::gif::GifDecoder::new(Cursor::new(&kept)).unwrap();
        assert_eq!(image::AnimationDecoder::into_frames(frames).count(), 2, "both frames stay");
        assert_eq!((p.width, p.height), (8, 6));
        assert!(strip_gif(&kept[..kept.len() - 5]).is_err(), "a cut GIF is refused");
    }
}
