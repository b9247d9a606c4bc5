"""The Textual user interface: explorer, retained inspector, publish pane, packets, chat."""
