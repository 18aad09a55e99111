package console

// ChooseWindow is chooseWindow, for the package's external tests.
var ChooseWindow = chooseWindow

// SafeNext is safeNext, for the package's external tests.
var SafeNext = safeNext
