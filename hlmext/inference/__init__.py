"""The inference floor: profile, bootstrap, Satterthwaite, Kenward-Roger, sandwich."""
