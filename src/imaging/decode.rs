//! Reading an image file into 8-bit RGB the way Keras's `load_img` gets it from Pillow:
//! `Image.open(...)` then `convert("RGB")`.
//!
//! - JPEG (including Adobe CMYK, converted with Pillow's formula) goes through libjpeg-turbo (the `turbojpeg` crate, built from its bundled source), the
//!   library inside Pillow's wheels, with the same defaults (accurate integer IDCT, smooth chroma
//!   upsampling): the decoded pixels are bit-identical to Pillow's. Pure-Rust JPEG decoders
//!   differ from it by a few levels on chroma edges.
//! - The other formats (PNG, BMP, GIF, WebP, TIFF, …) go through the `image` crate; lossless
//!   formats decode to the same pixels as Pillow (and so did lossy WebP, in the fixture).
//! - Pillow's mode conversions are kept: alpha is dropped (not composited), grey is replicated,
//!   16-bit colour keeps the high byte, and 16-bit grey (`I;16`) is clipped to 255.
//! - EXIF orientation is not applied, as in Keras, unless asked for.
//! - Sizes are checked from the header before decoding: 0×0 images and images over the pixel
//!   limit (a decompression bomb) are refused without allocating their pixels.

use std::io::Cursor;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// Pillow's decompression-bomb error threshold (`2 * Image.MAX_IMAGE_PIXELS`): Keras's
/// `load_img` refuses larger images, and so does this port by default.
pub const DEFAULT_MAX_PIXELS: u64 = 2 * 89_478_485;

#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Refuse images with more pixels than this (read from the header, before decoding).
    pub max_pixels: u64,
    /// Rotate/flip by the EXIF orientation tag (Keras does not).
    pub apply_exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { max_pixels: DEFAULT_MAX_PIXELS, apply_exif_orientation: false }
    }
}

/// Read and decode `path` to 8-bit RGB. Every error names the file.
pub fn read_rgb(path: &Path, options: &DecodeOptions) -> Result<RgbImage> {
    let bytes = crate::io::input::read_input(path, "the file")?;
    decode_rgb(&bytes, options).with_context(|| format!("{}: cannot load the image", path.display()))
}

/// Decode an encoded image (any supported format) to 8-bit RGB.
pub fn decode_rgb(bytes: &[u8], options: &DecodeOptions) -> Result<RgbImage> {
    if bytes.is_empty() {
        bail!("the file is empty (0 bytes)");
    }
    let format = image::guess_format(bytes).map_err(|_| {
        anyhow!("not an image this port reads (JPEG, PNG, BMP, GIF, WebP, TIFF, …): unknown file signature {}", signature(bytes))
    })?;
    let rgb = if format == ImageFormat::Jpeg {
        let header = turbojpeg::read_header(bytes).map_err(|e| anyhow!("not a readable JPEG: {e}"))?;
        check_size(header.width as u64, header.height as u64, options.max_pixels)?;
        decode_jpeg(bytes, &header)?
    } else {
        let (width, height) = header_size(bytes, format)?;
        check_size(width, height, options.max_pixels)?;
        let image = reader(bytes, format, options.max_pixels)
            .decode()
            .map_err(|e| anyhow!("cannot decode the {} data: {e}", format_name(format)))?;
        pillow_rgb(image)?
    };
    if !options.apply_exif_orientation {
        return Ok(rgb);
    }
    let orientation = reader(bytes, format, options.max_pixels)
        .into_decoder()
        .and_then(|mut decoder| decoder.orientation())
        .map_err(|e| anyhow!("cannot read the EXIF orientation: {e}"))?;
    let mut image = DynamicImage::ImageRgb8(rgb);
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// The first bytes in hex, so "not an image" errors show what the file starts with.
fn signature(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn reader(bytes: &[u8], format: ImageFormat, max_pixels: u64) -> ImageReader<Cursor<&[u8]>> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // The decoders' own allocation cap, sized to the pixel limit (16-bit RGBA at most).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(512 << 20));
    reader.limits(limits);
    reader
}

/// Width and height from a non-JPEG header, without decoding the pixels.
fn header_size(bytes: &[u8], format: ImageFormat) -> Result<(u64, u64)> {
    let (w, h) =
        reader(bytes, format, u64::MAX).into_dimensions().map_err(|e| anyhow!("not a readable {} image: {e}", format_name(format)))?;
    Ok((w.into(), h.into()))
}

/// "PNG", "JPEG", "WEBP", … for messages.
fn format_name(format: ImageFormat) -> String {
    format!("{format:?}").to_uppercase()
}

fn check_size(width: u64, height: u64, max_pixels: u64) -> Result<()> {
    if width == 0 || height == 0 {
        bail!("the image is {width}×{height} pixels (empty)");
    }
    if width * height > max_pixels {
        return Err(crate::Error::ImageTooLarge { width, height, limit: max_pixels }.into());
    }
    Ok(())
}

fn decode_jpeg(bytes: &[u8], header: &turbojpeg::DecompressHeader) -> Result<RgbImage> {
    let cmyk = matches!(header.colorspace, turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK);
    let (width, height) = (header.width, header.height);
    let format = if cmyk { turbojpeg::PixelFormat::CMYK } else { turbojpeg::PixelFormat::RGB };
    let channels = format.size();
    let mut image = turbojpeg::Image { pixels: vec![0u8; channels * width * height], width, pitch: channels * width, height, format };
    let mut decompressor = turbojpeg::Decompressor::new().map_err(|e| anyhow!("cannot start libjpeg-turbo: {e}"))?;
    // Pillow refuses truncated or corrupt JPEGs ("image file is truncated"); libjpeg-turbo
    // reports those as warnings, which the crate returns as errors, so they are refused here too.
    decompressor.decompress(bytes, image.as_deref_mut()).map_err(|e| anyhow!("corrupt or truncated JPEG: {e}"))?;
    let pixels = if cmyk { image.pixels.chunks_exact(4).flat_map(adobe_cmyk_to_rgb).collect() } else { image.pixels };
    RgbImage::from_raw(width as u32, height as u32, pixels).context("JPEG buffer size")
}

/// Pillow reads CMYK JPEGs as Adobe's inverted CMYK ('CMYK;I') and converts to RGB with
/// `cmyk2rgb`: channel = (255 - k) - (c · (255 - k)) / 255, rounded its fixed-point way.
fn adobe_cmyk_to_rgb(stored: &[u8]) -> [u8; 3] {
    // Stored values are inverted: 255 - k is the stored black byte itself.
    let inverse_black = stored[3] as i32;
    let channel = |stored: u8| {
        let ink = 255 - stored as i32;
        let t = ink * inverse_black + 128;
        (inverse_black - (((t >> 8) + t) >> 8)).clamp(0, 255) as u8
    };
    [channel(stored[0]), channel(stored[1]), channel(stored[2])]
}

/// Pillow's `convert("RGB")` of what it would have opened.
fn pillow_rgb(image: DynamicImage) -> Result<RgbImage> {
    let (w, h) = (image.width(), image.height());
    let pixels: Vec<u8> = match image {
        DynamicImage::ImageRgb8(rgb) => return Ok(rgb),
        DynamicImage::ImageRgba8(rgba) => rgba.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect(),
        DynamicImage::ImageLuma8(grey) => grey.pixels().flat_map(|p| [p[0]; 3]).collect(),
        DynamicImage::ImageLumaA8(grey) => grey.pixels().flat_map(|p| [p[0]; 3]).collect(),
        // Pillow reads 16-bit colour through its ';16B' raw modes, which keep the high byte.
        DynamicImage::ImageRgb16(rgb) => rgb.pixels().flat_map(|p| p.0.map(|v| (v >> 8) as u8)).collect(),
        DynamicImage::ImageRgba16(rgba) => rgba.pixels().flat_map(|p| [p[0], p[1], p[2]].map(|v| (v >> 8) as u8)).collect(),
        DynamicImage::ImageLumaA16(grey) => grey.pixels().flat_map(|p| [(p[0] >> 8) as u8; 3]).collect(),
        // 16-bit grey opens as mode 'I;16', whose conversion to RGB clips at 255.
        DynamicImage::ImageLuma16(grey) => grey.pixels().flat_map(|p| [p[0].min(255) as u8; 3]).collect(),
        other => bail!("unsupported pixel format {:?} (Keras's load_img cannot make RGB of it either)", other.color()),
    };
    RgbImage::from_raw(w, h, pixels).context("RGB buffer size")
}
