"""Working with predicted maps: visualization, landmarks and pose read from correspondence."""
