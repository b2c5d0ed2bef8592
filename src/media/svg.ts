/** Small helpers for the SVG that sharp (librsvg) turns into pixels. */

// Characters XML 1.0 forbids even when escaped: C0 controls but tab, LF and
// CR, lone surrogates, U+FFFE and U+FFFF. librsvg refuses the whole document on one.
const NOT_XML = /[^\u0009\u000A\u000D\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu

/** Text safe inside an element or a quoted attribute. */
export function escapeXml(text: string): string {
  return text
    .replace(NOT_XML, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
}

/** A `<linearGradient>` at `angle` degrees (0 = left to right, 90 = top to bottom). */
export function linearGradient(id: string, angle: number, colours: readonly string[]): string {
  const rad = (angle * Math.PI) / 180
  const dx = Math.cos(rad) / 2
  const dy = Math.sin(rad) / 2
  const at = (v: number) => (v * 100).toFixed(2)
  const stops = colours
    .map((c, i) => {
      const offset = colours.length === 1 ? 0 : (i / (colours.length - 1)) * 100
      return `<stop offset="${offset.toFixed(2)}%" stop-color="${c}"/>`
    })
    .join('')
  return (
    `<linearGradient id="${id}" x1="${at(0.5 - dx)}%" y1="${at(0.5 - dy)}%" ` +
    `x2="${at(0.5 + dx)}%" y2="${at(0.5 + dy)}%">${stops}</linearGradient>`
  )
}

/**
 * A document `width` × `height` pixels whose body is drawn in user units of
 * `viewWidth` × `viewHeight` (by default the same): one body, drawn at any
 * size, is one picture.
 */
export function svgDocument(
  width: number,
  height: number,
  body: string,
  viewWidth = width,
  viewHeight = height,
): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${viewWidth} ${viewHeight}">${body}</svg>`
  )
}
