package codes

import "fmt"

// CheckSecret refuses a key New would refuse (shorter than MinSecretLen
// bytes), saying so without showing it: the rule every component that takes
// a code key validates its configuration with.
func CheckSecret(key []byte) error {
	if len(key) < MinSecretLen {
		return fmt.Errorf("must be at least %d bytes, got %d", MinSecretLen, len(key))
	}
	return nil
}
