package sqlstore

import "testing"

// A group's multi-row inserts exist only for a VALUES tuple that binds each
// column once, in order: any other tuple would lose its expressions.
func TestBatchTextsOnlyForPlainTuples(t *testing.T) {
	const event = `INSERT INTO events (stream, event_key, payload, created_at) VALUES (?1, ?2, ?3, ?4)`
	b := newBatchTexts(event, event)
	if b.redemptions == nil || len(b.redemptions) != batchMax+1 {
		t.Fatalf("plain tuple: %d texts, want %d", len(b.redemptions), batchMax+1)
	}
	if want := `INSERT INTO events (stream, event_key, payload, created_at) VALUES (?, ?, ?, ?), (?, ?, ?, ?)`; b.redemptions[1] != want {
		t.Errorf("two rows:\n got %s\nwant %s", b.redemptions[1], want)
	}
	for _, one := range []string{
		`INSERT INTO events (stream, event_key, payload, created_at) VALUES (?1, ?2, ?3, datetime('now'))`,
		`INSERT INTO events (stream, event_key, payload, created_at) VALUES (?1, ?2, ?3, coalesce(?4, ''))`,
		`INSERT INTO events (stream, event_key, payload, created_at) VALUES (?2, ?1, ?3, ?4)`,
		`INSERT INTO events (stream, event_key, payload) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING`,
		`INSERT INTO events (stream) SELECT ?1`,
	} {
		if got := newBatchTexts(one, event); got.redemptions != nil {
			t.Errorf("%s: has multi-row forms %q", one, got.redemptions[0])
		}
	}
}
