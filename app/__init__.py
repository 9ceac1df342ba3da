"""movierec: movie recommendations on Qdrant."""
