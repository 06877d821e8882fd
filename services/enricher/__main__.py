from services.enricher.app import app

if __name__ == "__main__":
    app.main()
