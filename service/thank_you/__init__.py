"""Thank-you cards: one Cardly card for each completed order the rules allow."""
