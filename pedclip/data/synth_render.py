"""From a film's plan to pixels: anatomy + finding -> exposure curve -> detector (blur, edge enhancement,
noise) -> 8-bit -> collimation and burned-in markers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pedclip.data.synth_anatomy import axes, draw_chest, smooth_noise
from pedclip.data.synth_findings import draw_finding
from pedclip.data.synth_sites import CasePlan, SiteProfile

Array = np.ndarray


def render_film(plan: CasePlan, profile: SiteProfile) -> Image.Image:
    """The film as an 8-bit grayscale image; the same plan always gives the same pixels."""
    rng = np.random.default_rng(plan.seed_words)
    pad = rotation_pad(plan.height, plan.width, plan.pose.angle_deg)
    u, v = axes(plan.height, plan.width, plan.pose, pad)
    chest = draw_chest(u, v, plan.patient.anatomy, plan.pose, rng)
    finding = replace(plan.patient.finding, severity=plan.severity)
    density = rotate(chest.density + draw_finding(chest, finding, rng), plan, pad)
    grey = detector(expose(density, plan.exposure), profile, rng)
    pixels = np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)
    image = Image.fromarray(collimate(pixels, plan.collimation), mode="L")
    return burn_in(image, plan)


def rotation_pad(height: int, width: int, angle_deg: float) -> int:
    """Canvas margin that keeps the rotated film's corners inside the drawn anatomy."""
    return int(np.ceil(0.5 * (height + width) * abs(np.sin(np.radians(angle_deg))))) + 1


def rotate(density: Array, plan: CasePlan, pad: int) -> Array:
    """The patient's rotation about the film centre, cropping the padded canvas to the film (bilinear)."""
    if pad <= 1 and plan.pose.angle_deg == 0:
        return density[pad : pad + plan.height, pad : pad + plan.width]
    c, s = float(np.cos(np.radians(plan.pose.angle_deg))), float(np.sin(np.radians(plan.pose.angle_deg)))
    w2, h2 = plan.width / 2, plan.height / 2
    # output pixel (x, y) samples the canvas at R (x - centre) + centre + pad
    coefficients = (c, s, w2 + pad - c * w2 - s * h2, -s, c, h2 + pad + s * w2 - c * h2)
    canvas = Image.fromarray(np.ascontiguousarray(density, dtype=np.float32), mode="F")
    film = canvas.transform((plan.width, plan.height), Image.AFFINE, coefficients, resample=Image.BILINEAR)
    return np.asarray(film, dtype=np.float32)


def expose(density: Array, curve: tuple[float, float, float]) -> Array:
    """Density to grey: a window (lo..hi), a gamma, and a soft shoulder so bone and heart do not clip flat."""
    lo, hi, gamma = curve
    x = np.clip((density - lo) / (hi - lo), 0.0, None)
    knee = 0.72
    x = np.where(x < knee, x, knee + (1.0 - knee) * np.tanh((x - knee) / (1.0 - knee)))
    return np.clip(x, 0.0, 1.0) ** gamma


def detector(grey: Array, profile: SiteProfile, rng: np.random.Generator) -> Array:
    """The site's imaging chain: blur, CR-style edge enhancement, mottle and quantum noise."""
    out = gaussian_blur(grey, profile.blur) if profile.blur > 0 else grey
    if profile.sharpen > 0:
        out = out + profile.sharpen * (out - lowpass(out, 6))
    out = out + profile.mottle * smooth_noise(rng, out.shape, 40)
    # quantum noise grows with signal through the patient (brighter = fewer photons on this scale)
    sigma = profile.noise * (0.6 + 0.8 * np.clip(out, 0.0, 1.0))
    return out + sigma * rng.standard_normal(out.shape, dtype=np.float32)


def gaussian_blur(image: Array, sigma: float) -> Array:
    """Separable Gaussian blur with edge padding (a loop over kernel taps, not pixels)."""
    radius = max(1, int(np.ceil(2.5 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    h, w = image.shape
    padded = np.pad(image, radius, mode="edge")
    rows = sum(weight * padded[:, i : i + w] for i, weight in enumerate(taps))
    return sum(weight * rows[i : i + h, :] for i, weight in enumerate(taps)).astype(np.float32)


def lowpass(image: Array, factor: int) -> Array:
    """A wide blur done cheaply: box-average down by `factor`, bicubic back up (unsharp masking's base)."""
    h, w = image.shape
    small = Image.fromarray(image, mode="F").resize((max(1, w // factor), max(1, h // factor)), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.float32)


def collimate(pixels: Array, borders: tuple[float, float, float, float]) -> Array:
    """Black collimation borders (left, top, right, bottom, as fractions of the side)."""
    h, w = pixels.shape
    left, top, right, bottom = (round(f * n) for f, n in zip(borders, (w, h, w, h), strict=True))
    if not any((left, top, right, bottom)):
        return pixels
    out = pixels.copy()
    out[:, :left] = 0
    out[:top, :] = 0
    out[:, w - right :] = 0
    out[h - bottom :, :] = 0
    return out


def burn_in(image: Image.Image, plan: CasePlan) -> Image.Image:
    """Side marker (R on the image's left = patient's right, L on its right) and the site's text label."""
    if not plan.marker and not plan.label_text:
        return image
    draw = ImageDraw.Draw(image)
    w, h = image.size
    margin = max(3, round(0.045 * min(w, h)))
    if plan.marker:
        font = ImageFont.load_default(size=max(8, round(0.085 * min(w, h))))
        box = draw.textbbox((0, 0), plan.marker, font=font)
        x = margin if plan.marker == "R" else w - margin - (box[2] - box[0])
        draw.text((x, margin), plan.marker, fill=235, font=font)
    if plan.label_text:
        font = ImageFont.load_default(size=max(6, round(0.04 * min(w, h))))
        box = draw.textbbox((0, 0), plan.label_text, font=font)
        x = w - margin - (box[2] - box[0]) if plan.marker != "L" else margin
        draw.text((x, h - margin - (box[3] - box[1]) - 2), plan.label_text, fill=220, font=font)
    return image
