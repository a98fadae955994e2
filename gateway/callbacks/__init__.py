"""Status callbacks: what is announced and how it is signed (events), and how it is
delivered (delivery)."""
