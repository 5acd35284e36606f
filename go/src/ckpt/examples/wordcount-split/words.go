package main

import "strings"

// words splits a sentence into words exactly as the word count's
// TypeScript split task does (examples/wordcount/corpus.ts): the message
// bytes decoded as a WHATWG TextDecoder does (a leading byte order mark
// dropped, each maximal invalid UTF-8 subpart replaced by U+FFFD), split
// at runs of JavaScript's \s, empty words dropped.
func words(message []byte) []string {
	return strings.FieldsFunc(decodeUTF8(message), isJSSpace)
}

// isJSSpace is JavaScript's \s: WhiteSpace and LineTerminator of ECMAScript.
// Unlike Go's unicode.IsSpace it includes U+FEFF and excludes U+0085.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x00a0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// decodeUTF8 decodes as the WHATWG Encoding Standard's UTF-8 decoder with
// BOM sniffing: Go's own conversion replaces every invalid byte, where a
// TextDecoder replaces each maximal subpart of an invalid sequence once.
func decodeUTF8(b []byte) string {
	if len(b) >= 3 && b[0] == 0xef && b[1] == 0xbb && b[2] == 0xbf {
		b = b[3:]
	}
	var sb strings.Builder
	sb.Grow(len(b))
	var codePoint rune
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xbf)
	for i := 0; i < len(b); i++ {
		c := b[i]
		if needed == 0 {
			switch {
			case c <= 0x7f:
				sb.WriteByte(c)
			case c >= 0xc2 && c <= 0xdf:
				needed, codePoint = 1, rune(c&0x1f)
			case c >= 0xe0 && c <= 0xef:
				if c == 0xe0 {
					lower = 0xa0
				} else if c == 0xed {
					upper = 0x9f
				}
				needed, codePoint = 2, rune(c&0xf)
			case c >= 0xf0 && c <= 0xf4:
				if c == 0xf0 {
					lower = 0x90
				} else if c == 0xf4 {
					upper = 0x8f
				}
				needed, codePoint = 3, rune(c&0x7)
			default:
				sb.WriteRune(0xfffd)
			}
			continue
		}
		if c < lower || c > upper {
			// The byte starts over: it is not part of the broken sequence.
			codePoint, needed, seen = 0, 0, 0
			lower, upper = 0x80, 0xbf
			sb.WriteRune(0xfffd)
			i--
			continue
		}
		lower, upper = 0x80, 0xbf
		codePoint = codePoint<<6 | rune(c&0x3f)
		seen++
		if seen == needed {
			sb.WriteRune(codePoint)
			codePoint, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		sb.WriteRune(0xfffd)
	}
	return sb.String()
}
