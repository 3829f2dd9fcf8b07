package channel

import (
	"fmt"
	"unicode/utf8"
)

// Limits on a channel's names, flags and texts.
const (
	// MaxNameLen is the longest channel name, in bytes.
	MaxNameLen = 64
	// MaxFlagKeyLen is the longest feature flag key, in bytes.
	MaxFlagKeyLen = 128
	// MaxFlagValueLen is the longest feature flag value, in bytes.
	MaxFlagValueLen = 4096
	// MaxFlags is the most feature flags a channel may carry.
	MaxFlags = 256
	// MaxTextLen is the longest reason or description, in bytes.
	MaxTextLen = 1024
)

// ValidateName checks a channel name: 1 to MaxNameLen lowercase ASCII
// letters, digits, '_' and '-', starting with a letter or digit, e.g.
// "stable", "beta", "canary-eu". Names appear in stream names, NATS subjects,
// URLs and file names, so there are no dots, spaces, wildcards or slashes,
// and no upper case (so "Stable" and "stable" cannot both exist). The error
// wraps ErrInvalidName.
func ValidateName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidName, name, why) }
	if name == "" {
		return bad("empty")
	}
	if len(name) > MaxNameLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxNameLen))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return bad("must start with a lowercase letter or digit")
		}
		if !alnum && c != '_' && c != '-' {
			return bad(fmt.Sprintf("character %q; allowed are lowercase letters, digits, '_' and '-'", c))
		}
	}
	return nil
}

// ValidateFlagKey checks a feature flag key: 1 to MaxFlagKeyLen lowercase
// ASCII letters, digits, '.', '_' and '-', starting with a letter, e.g.
// "new-dashboard" or "telemetry.v2". The error wraps ErrInvalidFlag.
func ValidateFlagKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w key %q: %s", ErrInvalidFlag, key, why) }
	if key == "" {
		return bad("empty")
	}
	if len(key) > MaxFlagKeyLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxFlagKeyLen))
	}
	if c := key[0]; c < 'a' || c > 'z' {
		return bad("must start with a lowercase letter")
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return bad(fmt.Sprintf("character %q; allowed are lowercase letters, digits, '.', '_' and '-'", c))
		}
	}
	return nil
}

// ValidateFlagValue checks a feature flag value: valid UTF-8 of at most
// MaxFlagValueLen bytes; it may be empty. The error wraps ErrInvalidFlag.
func ValidateFlagValue(value string) error {
	if len(value) > MaxFlagValueLen {
		return fmt.Errorf("%w value: %d bytes, at most %d allowed", ErrInvalidFlag, len(value), MaxFlagValueLen)
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%w value: not valid UTF-8", ErrInvalidFlag)
	}
	return nil
}
