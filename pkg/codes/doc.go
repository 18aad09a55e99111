// Package codes is the code engine: it turns a sequence number into a
// promotion code and back, validates code formats, checks typed codes, and
// says how many codes a format can hold. It is a pure library: no I/O, no
// logging, no global state.
//
// # Formats
//
// A promo.Format compiles into a Layout (no key): charset (preset "alnum"
// with 31 characters, "numeric" with 10, "alpha" with 23, or the literal
// characters of a custom one), body length, optional prefix and suffix, an
// optional display separator every GroupSize characters, and a check
// character (on by default). NewLayout reports every invalid field with its
// request path (format.charset, format.length, ...).
//
// # The serial style
//
// A format of style "serial" shows the sequence number: prefix, the serial
// (sequence number + 1, zero-padded to SerialDigits decimal digits, so codes
// sort by serial), a keyed tail of TailLength characters of the charset, the
// check character, suffix (SPRING-000123-UJW9W2). The tail is SipHash-2-4 of
// the serial under a key derived from the secret and the code space
// (HMAC-SHA256(formatKey, "serial-tail"), separate from the permutation's
// round keys), reduced to the tail space n^TailLength ≤ MaxTailSpace. Serials
// are visible, so a guess at an issued one succeeds with probability
// 1/n^TailLength: the tail, not the count, is what the density limit bounds
// (CheckCapacity names the shortest tail, ShortestTail), and the digits bound
// the count (FewestSerialDigits). The check character runs over the serial's
// digits and the tail in one alphabet (the charset and the digits it lacks),
// so it catches every single substitution and every adjacent swap, across
// the serial/tail boundary too, without the key; Engine.Decode also verifies
// the tail, which only the key can.
//
// # One canonical form
//
// Every code, generated or vanity, has one canonical form, what the database
// stores and every look-up uses: Canonical removes whitespace and the
// separator characters (SeparatorChars, "-_.") anywhere and upper-cases
// letters, knowing nothing about formats. A generated code's canonical form
// is Canonical of its display form: canonical prefix + body + check +
// canonical suffix. The display form keeps the prefix and suffix as written,
// the body in the charset's own case, and adds the separator every GroupSize
// characters of body + check (the check character is the last character of
// the last group). For this to be one-to-one a separator must be one of
// SeparatorChars, and a custom charset may contain none of them nor a letter
// in both cases. Parse accepts any re-typing (any case, separators and spaces
// anywhere); Check tells, without allocating, whether an already canonical
// string has the shape of a code of the layout and whether its check
// character matches.
//
// # The permutation
//
// code = render(P(seq)). P is a keyed pseudorandom permutation of
// [0, space), space = |charset|^length ≤ 2^63-1: a balanced Feistel network
// over the smallest even number of bits 2h with 2^(2h) ≥ space, 8 rounds,
// round function F_i(R) = SipHash-2-4(k_i, i<<32 | R) truncated to h bits,
// restricted to [0, space) by cycle-walking (apply the network until the
// value is below space; on average fewer than 4 applications, 1.37 for alnum
// length 10).
//
// Why it is a bijection: each Feistel round (L, R) → (R, L ⊕ F(R)) is
// invertible whatever F is, so the network permutes [0, 2^(2h)). Cycle-walking
// a permutation of a superset, restricted to a subset, is a permutation of the
// subset: the walk from x follows x's cycle and stops at the next element of
// the subset, and walking the inverse cycle from there returns x, so the map
// has an inverse. Decode walks the inverse network.
//
// Keys: the secret (≥ MinSecretLen bytes, from configuration) only enters
// HMAC-SHA256(secret, CounterName), the format key; round key i is
// HMAC-SHA256(formatKey, "feistel"‖i). Different code spaces therefore get
// unrelated permutations. An Engine keeps only the round keys and never
// prints them (String shows the counter name); no error contains the secret.
//
// What an attacker without the key learns: the format (from any code), so the
// space; roughly how many codes exist (from the campaign); nothing about which
// codes exist beyond that: a guess is an issued code with probability
// issued/space, which CheckCapacity and SeqLimit keep below the density limit
// (DefaultMaxDensity = 1e-6). The security argument is the usual one for
// format-preserving Feistel constructions: with a pseudorandom round function,
// Luby and Rackoff proved 3 rounds a pseudorandom permutation and 4 rounds a
// strong one up to about 2^(h/2) queries, and Patarin showed that more rounds
// push the bound towards 2^h queries; 8 rounds is a wide margin over both.
// For the smallest spaces (h = 10 bits at 10^6 codes) such bounds are small
// in absolute terms; the known attacks on small-domain Feistel ciphers need
// many (sequence number, code) pairs, and the sequence numbers never leave
// the system.
//
// # Check character
//
// Damm's algorithm over a totally anti-symmetric quasigroup of order
// |charset| (see check.go for the constructions and proofs): it detects every
// single-character substitution and every adjacent transposition, including
// the last body character with the check character. Charset sizes 2, 6 and
// the other n ≡ 2 (mod 4) that are not 10 × odd have none built in; such
// formats must set checkChar to false.
//
// # Capacity
//
// SeqLimit(space, maxDensity) = ⌊space × maxDensity⌋ is how many sequence
// numbers a counter may ever hand out; CheckCapacity refuses a count above it
// (promo.ECapacity) and names the shortest length that fits. Spaces below
// MinSpace (10^6) are refused.
//
// # Speed
//
// AppendCode (permutation, render, check character; alnum, length 10,
// prefix) does not allocate. AppendCodes derives consecutive codes two at a
// time so the two SipHash chains overlap; it is what the generator should
// use. Measured with go test -bench . -benchmem -cpu 1 (make bench) on the
// 2-core Xeon reference machine, otherwise idle:
//
//	AppendCode    303 ns/op   3.30 M codes/s   0 allocs/op
//	AppendCodes   212 ns/op   4.72 M codes/s   0 allocs/op
//	Decode        329 ns/op   3.04 M codes/s   0 allocs/op
//
// With other builds sharing the two cores (load average 5 to 9) the
// wall-clock figures dropped as low as 690 ns/op; the cpu-codes/s metric
// (codes per second of CPU time the process got) stayed at 3.0-3.7 M.
//
// # Concurrency
//
// Layout and Engine are immutable after construction and safe for concurrent
// use by any number of goroutines.
package codes
