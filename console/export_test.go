package console

// ChooseWindow is chooseWindow, for the package's external tests.
var ChooseWindow = chooseWindow

// SafeNext is safeNext, for the package's external tests.
var SafeNext = safeNext

// Sessions is how many sessions the console holds.
func (c *Console) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sessions)
}
