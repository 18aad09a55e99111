package promo

// ListFilter selects promotions for a list page, newest first.
type ListFilter struct {
	// Status keeps only promotions in that lifecycle status ("" = any), as
	// PromotionStatus.Status derives it.
	Status Status
	// Active keeps only promotions whose active flag is *Active (nil = any).
	Active *bool
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

// Validate checks the filter before any database work.
func (f ListFilter) Validate() error {
	if f.Status != "" && !ValidStatus(f.Status) {
		return FieldErrorf("status", "must be one of %s; got %q", StatusList(), f.Status)
	}
	if f.Before < 0 {
		return FieldErrorf("cursor", "is not a cursor of this list")
	}
	return nil
}

// Page sizes of a promotion list.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// Statuses are every lifecycle status, in lifecycle order.
var Statuses = []Status{StatusPending, StatusGenerating, StatusCompleted, StatusFailed, StatusCancelled,
	StatusDeleting, StatusDeleted}

// StatusList is Statuses for messages: "pending, generating, ...".
func StatusList() string {
	s := ""
	for i, st := range Statuses {
		if i > 0 {
			s += ", "
		}
		s += string(st)
	}
	return s
}

// ValidStatus reports whether s is one of the lifecycle statuses.
func ValidStatus(s Status) bool {
	for _, st := range Statuses {
		if s == st {
			return true
		}
	}
	return false
}
