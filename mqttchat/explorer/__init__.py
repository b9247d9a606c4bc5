"""Pure models behind the explorer screens: topic tree, history budget, payload decoding. No Textual here."""
