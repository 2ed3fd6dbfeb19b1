// Package escape makes untrusted text (reasons, operator and host names,
// errors from a BMC or Nova) safe to print on a terminal and short enough to
// quote in an error message.
package escape

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Terminal returns s with every rune a terminal would act on escaped the
// way strconv.Quote writes it: newline as \n, ESC as \x1b, C1 controls and
// bidi overrides as \u0085, \u202e. Backslashes are doubled, so the escaped
// form is unambiguous. Printable text (spaces included) is kept as it is.
func Terminal(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && isInvalid(s[i:]):
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i]), 16))
		case r == '\\':
			b.WriteString(`\\`)
		case r == ' ' || strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

func isInvalid(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return r == utf8.RuneError && n <= 1
}

// clean reports whether s needs no escaping.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' || c >= utf8.RuneSelf {
			return cleanSlow(s)
		}
	}
	return true
}

func cleanSlow(s string) bool {
	for i, r := range s {
		if r == '\\' || (r == utf8.RuneError && isInvalid(s[i:])) || (r != ' ' && !strconv.IsPrint(r)) {
			return false
		}
	}
	return true
}

// Excerpt quotes s (strconv.Quote: control characters escaped) with at
// most max bytes of it; a longer s is cut at a rune boundary and the quote
// says how long it was: "aaaa…" (52428800 bytes).
func Excerpt(s string, max int) string {
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// ExcerptLen is the length Excerpt is used with for values quoted in
// errors: about 200 bytes, enough to recognise a value.
const ExcerptLen = 200
