package console

// ChooseWindow is chooseWindow, for the package's external tests.
var ChooseWindow = chooseWindow
