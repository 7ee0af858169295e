"""The device: the controller (the card's state machine), the recording writer thread, the
device assembly (sources, ring, recording, upload when docked), ``bwv doctor``'s checks and the
service manager's notifications. Imports only earlier layers."""
