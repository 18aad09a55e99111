package codes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// fingerprintLabel is the message the fingerprint MACs: fixed, so that a
// fingerprint names a key and nothing else.
const fingerprintLabel = "promocodes/key-fingerprint/v1"

// KeyFingerprint names a code key without revealing it: the first 8 bytes of
// HMAC-SHA256(secret, a fixed label), in hex (16 characters). Two keys have
// the same fingerprint with probability 2^-64; the key cannot be recovered
// from it, and it gives no help in guessing codes. A promotion stores the
// fingerprint of the key it was created under, so that a generator holding
// another key refuses its batches instead of splitting the promotion between
// two permutations.
func KeyFingerprint(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(fingerprintLabel))
	return hex.EncodeToString(m.Sum(nil)[:8])
}
