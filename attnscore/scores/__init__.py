"""The built-in attention kinds, one module each (a module whose name starts with _ holds what
several share). attnscore.attention imports every kind module when it is imported, by name, so
that no module imports another kind's module it does not call: a kind's code identity reaches
its own module only. Adding a kind is adding a module here."""
