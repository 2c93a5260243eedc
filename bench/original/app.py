from flask import Flask
import json
app = Flask(__name__)
@app.route("/requestme", methods=["GET"])
def hello():
    return json.dumps({"message": "Hello Flask.!!"})
if __name__ == "__main__":
    app.run(host="0.0.0.0", port=9090, debug=True)
