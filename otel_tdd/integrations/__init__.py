"""Framework glue (Streamlit and others)."""
