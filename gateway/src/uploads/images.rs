//! Images after upload: decoded (within limits, against decompression bombs), turned upright by
//! their EXIF orientation, and re-encoded without any metadata (EXIF, GPS, XMP, comments: the
//! encoders write none), with their dimensions and a JPEG thumbnail. CPU-bound: the caller runs
//! it on the blocking pool, a few at a time.
//!
//! A GIF keeps its bytes (re-encoding would lose its animation); only its first frame is read,
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
        ImageFormat::Gif => None,
        ImageFormat::Jpeg => Some(jpeg(&img.to_rgb8(), PHOTO_QUALITY)?),
        ImageFormat::Png => Some(encode(&img, ImageFormat::Png)?),
        _ => Some(encode(&DynamicImage::ImageRgba8(img.to_rgba8()), ImageFormat::WebP)?),
    };
    let thumb = thumbnail(&img)?;
    Ok(Processed { bytes, width: img.width(), height: img.height(), thumb })
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
}
