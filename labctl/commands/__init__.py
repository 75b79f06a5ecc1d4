"""The CLI's sub-commands, one module each; ``common`` holds what they share."""
