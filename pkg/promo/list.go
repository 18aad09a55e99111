package promo

// ListFilter selects promotions for a list page, newest first.
type ListFilter struct {
	// Status keeps only promotions in that lifecycle status ("" = any).
	Status Status
	// Name keeps only promotions whose name contains it, case-insensitively
	// for ASCII letters ("" = any).
	Name string
	// Before keeps only promotions with an id below it: the cursor of the
	// next page is the id of the last promotion of this one (0 = from the
	// newest).
	Before int64
	// Limit is the page size (stores apply DefaultListLimit for 0 or less and
	// cap it at MaxListLimit).
	Limit int
}

// Page sizes of a promotion list.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// ValidStatus reports whether s is one of the lifecycle statuses.
func ValidStatus(s Status) bool {
	switch s {
	case StatusPending, StatusGenerating, StatusCompleted, StatusFailed:
		return true
	}
	return false
}
