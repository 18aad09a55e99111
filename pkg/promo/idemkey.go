package promo

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// keyScopeSep ends a scoped Idempotency-Key's owner part. Clients' keys are
// printable ASCII, so it can stand in none of them.
const keyScopeSep = "\x1f"

// ScopedKey is the Idempotency-Key a request of a verified owner (a signed
// shopper) is recorded under: its own, apart from every other owner's, so
// that no one can take the key another shopper's checkout will send. The
// owner part is a digest of fixed length (23 characters with the
// separator), so a scoped key of the longest client key stays within every
// dialect's key column.
func ScopedKey(owner, key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(owner))
	return base64.RawURLEncoding.EncodeToString(sum[:16]) + keyScopeSep + key // 22 characters
}

// ClientKey is the key the client sent, from a recorded one (scoped or not).
func ClientKey(recorded string) string {
	if i := strings.LastIndex(recorded, keyScopeSep); i >= 0 {
		return recorded[i+len(keyScopeSep):]
	}
	return recorded
}
