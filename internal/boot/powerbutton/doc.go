// Package powerbutton owns turning the ACPI power button into a clean
// systemd poweroff, on an image that has neither udev nor logind.
//
// The power-button command finds the input devices the kernel names
// "Power Button" (the fixed-feature LNXPWRBN one, and a PNP0C0C one where
// the firmware describes the button as a device), loading the ACPI button
// driver and evdev first when there are none, reads their input_event
// records from /dev/input/eventN, and on a KEY_POWER press asks systemd,
// over its private D-Bus socket, to start poweroff.target
// ("replace-irreversibly"), as logind would. QEMU's system_powerdown
// presses this button.
package powerbutton
